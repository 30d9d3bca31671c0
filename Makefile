# The two set-up commands of the README: `make lab` and `make test`.
.PHONY: lab test lab-down

lab:
	bash scripts/install-engine.sh
	bash scripts/setup-venv.sh
	.venv/bin/fleetwarden lab up --hosts 3
	.venv/bin/ansible-playbook site.yml
	.venv/bin/fleetwarden lab status

test:
	bash scripts/test.sh

lab-down:
	.venv/bin/fleetwarden lab down
