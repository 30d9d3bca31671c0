# The two set-up commands of the README: `make lab` and `make test`. `make unit` (lint and unit tests, no
# engine) and `make sanity` (ansible-test sanity on the built collection) are the fast checks; make test runs both.
.PHONY: lab test lab-down unit sanity

lab:
	bash scripts/install-engine.sh
	bash scripts/setup-venv.sh
	.venv/bin/fleetwarden lab up --hosts 3
	.venv/bin/ansible-playbook site.yml
	.venv/bin/fleetwarden lab status

test:
	bash scripts/test.sh

unit:
	bash scripts/unit.sh

sanity:
	bash scripts/sanity.sh

lab-down:
	.venv/bin/fleetwarden lab down
