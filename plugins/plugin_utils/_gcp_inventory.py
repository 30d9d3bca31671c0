# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""The parse that the gcp_tpu and gce_gpu inventories share; controller-only.

aws_ec2's shape: check the config, cached? then query, report partial failures, populate, update the
cache. A subclass lists its API (`_query`) and says how a record is named (`_naming`); everything
else, including how a failing project or zone is reported, is here once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleParserError
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.fleetwarden.fleet.plugins.module_utils._gcp import (
    GOOGLE_IMPORT_ERROR,
    HAS_GOOGLE_LIBRARIES,
    RETRYABLE_EXCEPTIONS,
    RETRYABLE_STATUS,
    ApiCaller,
    GcpError,
    TimeBudgetSpent,
    check_endpoint,
    describe_http_error,
    http_factory,
    load_credentials,
    refresh_credentials,
    validate_auth_options,
)
from ansible_collections.fleetwarden.fleet.plugins.module_utils._lab_credentials import credential_problem
from ansible_collections.fleetwarden.fleet.plugins.plugin_utils._inventory import (
    NAME_SCHEMES,
    FleetInventoryMixin,
    InventoryError,
    cache_entry,
    choose_address,
    duplicate_message,
    group_name,
    make_unsafe_vars,
    matches_filters,
    paused_gc,
    pick_hostname,
    validate_addresses,
    validate_filters,
    validate_hostnames,
)

ADDRESS_CHOICES = ("external_ip", "internal_ip")
# Unique across zones and projects whatever the fleet holds, so a name never changes because
# another resource appeared somewhere else.
FALLBACK_HOSTNAME = "name_zone_project"


def short_name(resource):
    """The last path segment of a resource name or URL: `.../zones/us-central1-a` -> `us-central1-a`."""
    return resource.rstrip("/").rsplit("/", 1)[-1] if resource else resource


# ---------------------------------------------------------------------------------------------
# Failures: a zone or a project that could not be listed
# ---------------------------------------------------------------------------------------------


def zone_failure(project, zones, reason=None, what="hosts", word="location(s)"):
    """A failure record for unreachable zones: their resources are missing, not deleted."""
    return {
        "scope": "zone",
        "project": project,
        "message": "project %s: %s %s unreachable%s; their %s are missing from the inventory"
        % (project, word, ", ".join(zones), " (%s)" % reason if reason else "", what),
    }


def project_failure(project, message):
    return {"scope": "project", "project": project, "message": message}


def is_credential_error(exc):
    """401: the credential itself is refused, for every project alike; listing the others cannot help."""
    return getattr(getattr(exc, "resp", None), "status", None) == 401


def describe_project_failure(exc, api, project, action, viewer_role):
    """One sentence for a failure that loses a whole project: what failed, and the fix."""
    if isinstance(exc, TimeBudgetSpent):
        return "%s for project %s while %s. Raise total_timeout, or list fewer projects per source." % (
            str(exc)[:1].upper() + str(exc)[1:],
            project,
            action,
        )
    if isinstance(exc, RETRYABLE_EXCEPTIONS):
        return "Could not reach the API for project %s while %s (%s), retries exhausted. Try again later." % (
            project,
            action,
            type(exc).__name__,
        )
    message = describe_http_error(exc, api, project, action)
    status = exc.resp.status
    if status == 403 and "is disabled for project" not in message:
        return "%s. Grant the credential %s on project %s, or remove it from projects." % (
            message.rstrip("."),
            viewer_role,
            project,
        )
    if status == 404:
        return "%s. Check the project ID in projects." % message.rstrip(".")
    if status in RETRYABLE_STATUS:
        return "%s. Try again later, or raise retries or total_timeout." % message.rstrip(".")
    return message


def failure_warning(failure):
    if failure["scope"] == "project":
        return "project %s is missing from this inventory: %s Set strict_permissions: true to make this an error." % (
            failure["project"],
            failure["message"],
        )
    return failure["message"]


# ---------------------------------------------------------------------------------------------
# The shared plugin body
# ---------------------------------------------------------------------------------------------


class GcpInventoryMixin(FleetInventoryMixin):
    """Mixed into BaseInventoryPlugin + Constructable + Cacheable subclasses.

    A subclass sets ALL_GROUP (the group every host is in, directly or through its child groups),
    DEFAULT_GROUPS ((host var, group prefix) pairs), ADDRESS_VARS ((addresses choice, host var) pairs),
    CONFIG_SUFFIXES, and implements:
    - `_query(caller)` -> (records, failures): records are host var dicts of plain data (they cache
      as JSON), failures are zone_failure / project_failure records;
    - `_naming(host_vars)` -> (name, qualifiers, labels, suffix): what pick_hostname needs;
    - `_resource(host_vars)` -> the resource path that an error about a duplicate name shows;
    - optionally `_own_groups(host_vars, choice)` -> group names beyond DEFAULT_GROUPS.
    """

    ALL_GROUP = None
    DEFAULT_GROUPS = ()
    ADDRESS_VARS = ()

    def make_unsafe(self, host_vars):
        """Host vars with template syntax marked unsafe (ansible's wrap_var)."""
        return make_unsafe_vars(host_vars, wrap_var)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path)
        if not HAS_GOOGLE_LIBRARIES:
            raise AnsibleParserError("%s needs google-api-python-client: %s" % (self.NAME, GOOGLE_IMPORT_ERROR))
        try:
            self._check_config(self._read_config_data(path))
            with paused_gc():
                entry, cache_needs_update = self._cached_result(path, cache)
                cached = entry is not None
                if entry is None:
                    entry = cache_entry(*self._query(self._api_caller(self._credentials(), self._deadline())))
                self._report(entry["failures"], cached)
                self._populate(entry["records"])
        except GcpError as exc:
            raise AnsibleParserError(str(exc)) from None
        except InventoryError as exc:
            raise AnsibleParserError("%s: %s" % (self.NAME, exc)) from None
        if cache_needs_update:
            self._cache[self.get_cache_key(path)] = entry

    def _check_config(self, config):
        try:
            self._refuse_unknown_options(config)
            validate_hostnames(self.get_option("hostnames"), NAME_SCHEMES, ADDRESS_CHOICES)
            validate_addresses(self.get_option("addresses"), ADDRESS_CHOICES)
            validate_filters(self.get_option("filters"))
            validate_auth_options(
                self.get_option("auth_kind"),
                self.get_option("service_account_file"),
                self.get_option("access_token"),
                self.get_option("service_account_contents"),
            )
            if not self.get_option("projects"):
                raise InventoryError("projects must list at least one project")
            if self.get_option("total_timeout") <= 0:
                raise InventoryError("total_timeout must be a positive number of seconds")
            if self.get_option("endpoint"):
                check_endpoint(self.get_option("endpoint"))
            problem = credential_problem(
                self.get_option("endpoint"),
                self.get_option("auth_kind"),
                self.get_option("access_token"),
                self.get_option("service_account_file"),
                self.get_option("service_account_contents"),
            )
            if problem:
                raise InventoryError(problem)
        except GcpError as exc:
            raise InventoryError(str(exc)) from None

    def _deadline(self):
        return time.monotonic() + self.get_option("total_timeout")

    def _api_caller(self, credentials, deadline):
        timeout = min(self.get_option("request_timeout"), self.get_option("total_timeout"))
        return ApiCaller(
            http_factory(credentials, timeout=timeout),
            retries=self.get_option("retries"),
            deadline=deadline,
            on_retry=lambda reason, attempt, delay: self.display.vvv(
                "%s: %s, retry %d in %.1fs" % (self.NAME, reason, attempt, delay)
            ),
        )

    def _credentials(self):
        credentials = load_credentials(
            self.get_option("auth_kind"),
            self.get_option("service_account_file"),
            self.get_option("access_token"),
            self.get_option("scopes"),
            self.get_option("service_account_contents"),
        )
        return refresh_credentials(credentials, self.get_option("request_timeout"))

    def _report(self, failures, cached=False):
        """Warn about every failure, as the original run did; a lost project is fatal when strict, or when all are."""
        lost = sorted({failure["project"] for failure in failures if failure["scope"] == "project"})
        if lost and (self.get_option("strict_permissions") or len(lost) >= len(set(self.get_option("projects")))):
            raise GcpError(
                "%s: %s"
                % (self.NAME, " ".join(failure["message"] for failure in failures if failure["scope"] == "project"))
            )
        for failure in failures:
            self._warn(failure_warning(failure), cached)

    def _own_groups(self, host_vars, choice):
        return ()

    def _populate(self, records):
        order = self.get_option("hostnames")
        address_order = self.get_option("addresses")
        filters = self.get_option("filters")
        inventory = self.inventory
        # ALL_GROUP holds the default groups as children, so most hosts join it through them:
        # one group membership less per host (each costs as much as a few host vars).
        all_group = inventory.add_group(self.ALL_GROUP)
        groups = {}  # (prefix, value) -> group, created once
        owners = {}  # inventory hostname -> the resource that has it
        for host_vars in records:
            if filters and not matches_filters(host_vars, filters):
                continue
            name, qualifiers, labels, suffix = self._naming(host_vars)
            addresses = {choice: host_vars.get(var) for choice, var in self.ADDRESS_VARS}
            hostname, choice = pick_hostname(order, name, qualifiers, labels, addresses, suffix)
            if hostname is None:  # none of the chosen values: the documented fallback, never a drop
                hostname, choice = pick_hostname((FALLBACK_HOSTNAME,), name, qualifiers, labels, addresses, suffix)
            if hostname in owners:
                raise InventoryError(
                    duplicate_message(
                        hostname,
                        self._resource(owners[hostname]),
                        self._resource(host_vars),
                        "Choose hostnames that tell them apart, such as [%s] (the default)." % FALLBACK_HOSTNAME,
                    )
                )
            owners[hostname] = host_vars
            host_vars = self.make_unsafe(host_vars)
            inventory.add_host(hostname)
            for key, value in host_vars.items():
                inventory.set_variable(hostname, key, value)
            ansible_host = choose_address(address_order, addresses)
            if ansible_host:
                inventory.set_variable(hostname, "ansible_host", ansible_host)
                host_vars["ansible_host"] = ansible_host
            grouped = False
            for var, prefix in self.DEFAULT_GROUPS:
                value = host_vars.get(var)
                if value:
                    self._join(groups, all_group, (prefix, value), hostname)
                    grouped = True
            for own in self._own_groups(host_vars, choice):
                self._join(groups, all_group, (own, None), hostname)
                grouped = True
            if not grouped:
                inventory.add_child(all_group, hostname)
            self._add_constructed(hostname, host_vars)

    def _join(self, groups, all_group, key, hostname):
        group = groups.get(key)
        if group is None:
            name = group_name(*key) if key[1] is not None else key[0]
            group = groups[key] = self.inventory.add_group(name)
            self.inventory.add_child(all_group, group)
        self.inventory.add_child(group, hostname)
