"""The Debian security tracker's JSON (`/tracker/data/json`): source package -> issue ->
release -> status.

    {"openssl": {"CVE-2024-0727": {"description": "...", "releases": {"bookworm": {
        "status": "resolved", "fixed_version": "3.0.13-1~deb12u1", "urgency": "low",
        "repositories": {"bookworm": "3.0.11-1~deb12u2"}}}}}}

Per release: `resolved` with a version is FIXED from that version on; `resolved` with `0`
means the release was never affected; `open` is NOT_FIXED, or WONT_FIX when the tracker
says `no-dsa` (`nodsa`) or the release is at end of life for the package; `undetermined`
is not imported (the tracker has not looked yet) and is counted as skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from skanse.vuln import severity as sev
from skanse.vuln.ecosystems import DEBIAN_CODENAMES, distro_key
from skanse.vuln.importers._common import RecordError, as_mapping, version_text
from skanse.vuln.model import Advisory, Affected, Event, FixState, Rejected
from skanse.vuln.versions import Scheme

__all__ = ["Skipped", "looks_like_debian_tracker", "tracker_advisories"]


class Skipped(str):
    """An entry deliberately not imported; its text is the reason (counted, not listed)."""

    __slots__ = ()


def looks_like_debian_tracker(data: object) -> bool:
    if not isinstance(data, Mapping) or not data:
        return False
    for value in list(data.values())[:5]:
        if not isinstance(value, Mapping):
            return False
        for issue, body in list(value.items())[:3]:
            if not isinstance(body, Mapping) or "releases" not in body:
                return False
            if not isinstance(issue, str):
                return False
    return True


def tracker_advisories(data: object, origin: str) -> Iterator[Advisory | Rejected | Skipped]:
    tracker = as_mapping(data, "tracker")
    issues: dict[str, tuple[str, list[Affected]]] = {}
    for package, raw_issues in tracker.items():
        if not isinstance(raw_issues, Mapping):
            yield Rejected(f"{origin}: {package}", "expected an object of issues")
            continue
        for issue, raw in raw_issues.items():
            try:
                body = as_mapping(raw, f"{package}/{issue}")
                releases = body.get("releases")
                if isinstance(releases, list) and not releases:
                    continue  # no release carries the package
                releases = as_mapping(releases, f"{package}/{issue}: releases")
                description = body.get("description")
                text = description if isinstance(description, str) else ""
                entry = issues.setdefault(issue, (text, []))
                for codename, raw_release in releases.items():
                    result = _affected(package, issue, str(codename), raw_release)
                    if isinstance(result, Skipped):
                        yield result
                    else:
                        entry[1].append(result)
            except RecordError as exc:
                yield Rejected(f"{origin}: {package}/{issue}", str(exc))
    for issue in sorted(issues):
        text, affected = issues[issue]
        if not affected:
            continue
        yield Advisory(
            id=issue,
            source="debian-tracker",
            summary=text.split("\n", 1)[0][:200],
            details=text,
            references=(f"https://security-tracker.debian.org/tracker/{issue}",),
            affected=tuple(affected),
        )


def _affected(package: str, issue: str, codename: str, raw: object) -> Affected | Skipped:
    release = as_mapping(raw, f"{package}/{issue}/{codename}")
    status = release.get("status")
    ecosystem = distro_key("debian", DEBIAN_CODENAMES.get(codename, codename))
    urgency = release.get("urgency")
    severity = sev.from_word(urgency) if isinstance(urgency, str) else None
    if status == "resolved":
        fixed = version_text(release.get("fixed_version"), f"{package}/{issue}/{codename}")
        if fixed == "0":
            return Affected(
                ecosystem,
                package,
                Scheme.DEB,
                fix_state=FixState.NOT_AFFECTED,
                note="Debian security tracker: not affected",
            )
        return Affected(
            ecosystem,
            package,
            Scheme.DEB,
            ranges=((Event("introduced", "0"), Event("fixed", fixed)),),
            severity=severity,
        )
    if status == "open":
        state, note = FixState.NOT_FIXED, ""
        if "nodsa" in release:
            reason = release.get("nodsa_reason")
            state = FixState.WONT_FIX
            note = f"no-dsa: {reason}" if isinstance(reason, str) and reason else "no-dsa"
            if reason == "postponed":
                state = FixState.NOT_FIXED  # postponed to a later point release
        elif isinstance(urgency, str) and urgency.startswith("end-of-life"):
            state, note = FixState.WONT_FIX, "end-of-life"
        return Affected(
            ecosystem,
            package,
            Scheme.DEB,
            ranges=((Event("introduced", "0"),),),
            fix_state=state,
            note=note,
            severity=severity,
        )
    if status == "undetermined":
        return Skipped("status undetermined")
    raise RecordError(f"{package}/{issue}/{codename}: unknown status {status!r}")
