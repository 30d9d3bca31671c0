# Copyright: fleetwarden maintainers
# Apache License 2.0 (see LICENSE)
"""What every fleetwarden inventory plugin shares (gcp_tpu, gce_gpu, runpod); controller-only.

Pure functions for host names, addresses, filters, group names and unsafe marking, and one mixin for
the parts of a plugin that are the same in all three: the config-file suffix check, unknown options,
the cache (which keeps the warnings of a partial result, so that a hit warns as the original run did)
and the populate loop, which never drops a host silently.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import difflib
import fnmatch
import gc


class InventoryError(Exception):
    """A config or listing error already worded for a person; the plugin adds its name."""


# ---------------------------------------------------------------------------------------------
# Host names and addresses
# ---------------------------------------------------------------------------------------------

# Name schemes: which qualifiers follow the resource name, in the order they are appended.
# `<name>.<zone>.<project>` reads like the zonal DNS name Google gives a VM (`vm.zone.c.project.internal`).
NAME_SCHEMES = {
    "name": (),
    "name_zone": ("zone",),
    "name_project": ("project",),
    "name_zone_project": ("zone", "project"),
}
LABEL_PREFIX = "labels."


def validate_hostnames(order, schemes, addresses, labels=True):
    """Raise InventoryError naming the bad entries when `hostnames` holds unsupported values."""
    allowed = list(schemes) + list(addresses) + (["labels.<key>"] if labels else [])
    if not isinstance(order, (list, tuple)) or not order:
        raise InventoryError("hostnames must be a non-empty list drawn from: %s" % ", ".join(allowed))
    unknown = [
        value
        for value in order
        if not isinstance(value, str)
        or not (
            value in schemes
            or value in addresses
            or (labels and value.startswith(LABEL_PREFIX) and len(value) > len(LABEL_PREFIX))
        )
    ]
    if unknown:
        raise InventoryError(
            "hostnames has unsupported value(s) %s; supported: %s"
            % (", ".join(repr(value) for value in unknown), ", ".join(allowed))
        )


def validate_addresses(order, allowed):
    """Raise InventoryError unless `addresses` is a list drawn from `allowed` (it may be empty)."""
    if not isinstance(order, (list, tuple)):
        raise InventoryError("addresses must be a list drawn from: %s" % ", ".join(allowed))
    unknown = [value for value in order if value not in allowed]
    if unknown:
        raise InventoryError(
            "addresses has unsupported value(s) %s; supported: %s"
            % (", ".join(repr(value) for value in unknown), ", ".join(allowed))
        )


def pick_hostname(order, name, qualifiers, labels=None, addresses=None, suffix=""):
    """(inventory hostname, the entry of `order` that gave it): the first entry this resource has a value for.

    `name` + `suffix` (a slice worker's `-w<index>`) is the base; NAME_SCHEMES append qualifiers
    with dots; `labels.<key>` takes a label's value (plus the suffix); an address choice takes the
    address from `addresses`. (None, None) when nothing in `order` applies.
    """
    for choice in order:
        scheme = NAME_SCHEMES.get(choice)
        if scheme is not None:
            values = [qualifiers.get(key) for key in scheme]
            if name and all(values):
                return ".".join(["%s%s" % (name, suffix), *values]), choice
        elif choice.startswith(LABEL_PREFIX):
            value = (labels or {}).get(choice[len(LABEL_PREFIX) :])
            if value:
                return "%s%s" % (value, suffix), choice
        else:
            value = (addresses or {}).get(choice)
            if value:
                return value, choice
    return None, None


def choose_address(order, addresses):
    """The first address in `order` that the host has, or None."""
    for choice in order:
        value = addresses.get(choice)
        if value:
            return value
    return None


def duplicate_message(hostname, first, second, fix):
    """The error for two resources that one hostname scheme gives the same name."""
    return "hostnames gives two resources the same inventory hostname %s: %s and %s. %s" % (
        hostname,
        first,
        second,
        fix,
    )


# ---------------------------------------------------------------------------------------------
# Filters, group names, unsafe marking
# ---------------------------------------------------------------------------------------------


def validate_filters(filters):
    """Raise InventoryError unless `filters` maps host var names to a pattern or a list of patterns."""
    if not isinstance(filters, dict):
        raise InventoryError(
            "filters must be a mapping of host variable to pattern(s), got %s" % type(filters).__name__
        )
    for key, value in filters.items():
        patterns = value if isinstance(value, list) else [value]
        if not all(isinstance(pattern, (str, int, bool)) for pattern in patterns):
            raise InventoryError("filters.%s must be a string or a list of strings" % key)


def lookup(host_vars, dotted):
    """host_vars['a']['b'] for 'a.b'; None when any step is missing."""
    value = host_vars
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def matches_filters(host_vars, filters):
    """True when every filter key matches one of its glob patterns (keys AND, patterns OR)."""
    for key, patterns in (filters or {}).items():
        value = lookup(host_vars, key)
        if value is None:
            return False
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(patterns, list):
            patterns = [patterns]
        wanted = [str(pattern).lower() if isinstance(pattern, bool) else str(pattern) for pattern in patterns]
        if not any(fnmatch.fnmatchcase(text, pattern) for pattern in wanted):
            return False
    return True


def group_name(prefix, value):
    """A safe group name: `tpu_state` + `READY` -> `tpu_state_ready`."""
    cleaned = "".join(char if char.isalnum() else "_" for char in str(value).lower())
    return "%s_%s" % (prefix, cleaned)


def make_unsafe_tree(value, wrap):
    """Mark strings that hold template syntax as unsafe with `wrap` (ansible's wrap_var).

    API values are user-controlled (labels, names). Only a string with `{` can be a template,
    so a cheap test per string keeps 5,000 hosts fast; everything else is returned as is.
    """
    kind = type(value)
    if kind is str:
        return wrap(value) if "{" in value else value
    if kind is dict:
        return {make_unsafe_tree(key, wrap): make_unsafe_tree(item, wrap) for key, item in value.items()}
    if kind is list:
        return [make_unsafe_tree(item, wrap) for item in value]
    return value


def make_unsafe_vars(host_vars, wrap):
    """make_unsafe_tree for a host's vars, whose top-level keys are the plugin's own names."""
    return {
        key: (wrap(value) if "{" in value else value) if isinstance(value, str) else make_unsafe_tree(value, wrap)
        for key, value in host_vars.items()
    }


# ---------------------------------------------------------------------------------------------
# Config checks and the garbage collector
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic garbage collector for one parse, then restore it as it was.

    A parse decodes megabytes of JSON into hundreds of thousands of dicts and lists and holds the
    large compute discovery document; every automatic collection walks them all again. Measured on
    5,000 instances, that was half of the parse. Reference counting still frees everything acyclic
    at once; the few cycles wait for the collector, which runs again right after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def unknown_options(config, known):
    """Config keys that are not options, sorted; a typo must not be ignored silently."""
    return sorted(key for key in config if key not in known)


def describe_unknown_options(unknown, known):
    """`zone (did you mean zones?)` for each unknown key."""
    described = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=1)
        described.append("%s (did you mean %s?)" % (key, close[0]) if close else key)
    return ", ".join(described)


# ---------------------------------------------------------------------------------------------
# The cache: records and the warnings of the run that produced them
# ---------------------------------------------------------------------------------------------

CACHE_FORMAT = 2


def cache_entry(records, failures):
    """What the cache keeps: the shaped records and the failures (partial results) of that run."""
    return {"format": CACHE_FORMAT, "records": records, "failures": failures}


def usable_cache_entry(value):
    """The entry, or None for anything written by an older plugin (a plain list) or damaged."""
    if isinstance(value, dict) and value.get("format") == CACHE_FORMAT and isinstance(value.get("records"), list):
        return value
    return None


class FleetInventoryMixin:
    """Mixed into BaseInventoryPlugin + Constructable + Cacheable subclasses of our three plugins.

    A subclass sets CONFIG_SUFFIXES (the file-name endings verify_file accepts).
    """

    CONFIG_SUFFIXES = ()

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(self.CONFIG_SUFFIXES)

    def _refuse_unknown_options(self, config):
        known = set(self._options) | {"plugin"}
        unknown = unknown_options(config, known)
        if unknown:
            raise InventoryError(
                "unknown option(s) %s; see `ansible-doc -t inventory %s`"
                % (describe_unknown_options(unknown, known), self.NAME)
            )

    def _cached_result(self, path, cache):
        """(entry, cache_needs_update): entry is None when the API must be queried."""
        if not self.get_option("cache"):
            return None, False
        if not cache:  # --flush-cache or meta: refresh_inventory
            return None, True
        try:
            entry = usable_cache_entry(self._cache[self.get_cache_key(path)])
        except KeyError:
            return None, True
        return entry, entry is None

    def _warn(self, message, cached=False):
        self.display.warning("%s: %s%s" % (self.NAME, "from the cache: " if cached else "", message))

    def _add_constructed(self, hostname, host_vars):
        """compose, groups and keyed_groups for one host, as every constructed plugin does them."""
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        if not (compose or groups or keyed_groups):
            return
        strict = self.get_option("strict")
        if self.get_option("use_extra_vars"):
            host_vars = dict(host_vars, **self._vars)
        self._set_composite_vars(compose, host_vars, hostname, strict=strict)
        self._add_host_to_composed_groups(groups, host_vars, hostname, strict=strict)
        self._add_host_to_keyed_groups(keyed_groups, host_vars, hostname, strict=strict)
