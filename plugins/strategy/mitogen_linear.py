"""Strategy plugin: Ansible's linear strategy over Mitogen's connections.

Mitogen keeps one Python interpreter per host for the whole run, reached over the same SSH, and runs each module
in it from an import cache: no AnsiballZ payload, temporary directory or new interpreter per task. The strategy
order, results, check mode and diffs are linear's. ansible.cfg names this plugin, so every playbook of the project
(site.yml, recover.yml in the receiver, the tests') runs over it; a run without the mitogen package on the
controller fails at once, naming it. Importing this file never fails: without Mitogen, the strategy it
defines refuses to start instead, so that ansible-doc and ansible-test can still read it.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_linear
short_description: The linear strategy, with Mitogen's persistent connections
description:
  - Ansible's C(linear) strategy with the C(mitogen) package's connection multiplexer and in-process module
    execution, as the package's own C(mitogen_linear) strategy provides.
  - Addressed by its collection name, so ansible.cfg need not name a path inside a virtual environment.
requirements:
  - mitogen (Python package, on the controller only)
"""

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError as exc:
    MITOGEN_IMPORT_ERROR = exc

    from ansible.errors import AnsibleError
    from ansible.plugins.strategy.linear import StrategyModule as _LinearStrategyModule

    class StrategyModule(_LinearStrategyModule):  # type: ignore[no-redef]
        """Stands in for Mitogen's strategy when the package is missing; refuses to run, naming it."""

        def __init__(self, *args, **kwargs):  # pylint: disable=super-init-not-called
            raise AnsibleError(
                "fleetwarden.fleet.mitogen_linear needs the mitogen package on the controller "
                f"(pip install the fleetwarden package, which depends on it): {MITOGEN_IMPORT_ERROR}"
            ) from MITOGEN_IMPORT_ERROR

__all__ = ["StrategyModule"]
