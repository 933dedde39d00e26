"""Every allowed connection of a `NetworkModel`, computed on classes of pods with numpy.

Pods that no selector, named port or ipBlock can tell apart (same namespace, same values of
the label keys any selector mentions, same named ports, same ipBlock ranges for their IPs)
form one class, so 10,000 replicas of 1,000 Deployments are 1,000 classes. Connection sets
are interned to small integers; for every isolated class one row holds, per peer, the id of
the union of what its policies' rules allow, and rows are shared between classes that the
same rules select. A connection needs the source's egress and the destination's ingress,
so the result per pair is the intersection of the two rows' entries. Pairs are combined in
blocks so memory stays bounded however many classes there are.

The semantics (networking.k8s.io/v1): a direction is isolated for a pod when a policy of its
namespace selects it and has that direction in its (defaulted) policyTypes; isolated means
only the union of the rules of those policies is allowed, not isolated means everything. A
pod always reaches itself and traffic from its node is always allowed: neither is listed.

A hostNetwork pod shares its node's network namespace. Kubernetes leaves NetworkPolicy for
such pods undefined, and most CNIs neither isolate them nor tell their traffic from the
node's (which a pod on that node always exchanges). So no policy decides anything for them:
every connection to or from a hostNetwork pod, external ones included, is listed as allowed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skanse.netpol.addresses import IpRange, atoms, merge_segments
from skanse.netpol.model import (
    Direction,
    IpBlockPeer,
    NetworkModel,
    Pod,
    Policy,
    Rule,
    SelectorPeer,
    Workload,
)
from skanse.netpol.ports import ALL, EMPTY, ConnSet
from skanse.netpol.selectors import LabelSelector, Operator

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    IntArray = npt.NDArray[np.int64]
    BoolArray = npt.NDArray[np.bool_]
else:
    IntArray = BoolArray = Any

__all__ = ["Analysis", "Connection", "Endpoint", "analyse"]

_EMPTY_ID, _ALL_ID = 0, 1
_SHIFT = 32  # two interned ids packed into one int64 for vectorised pair lookups
_BLOCK_CELLS = 4_000_000  # class pairs combined per step: bounds memory to ~100 MB


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """A side of a connection: a workload, or a range of addresses outside the cluster."""

    label: str  # ns/name[Kind] or a-b[External]: what outputs print, sort and compare by
    workload: Workload | None = field(default=None, compare=False)
    addresses: IpRange | None = field(default=None, compare=False)

    @property
    def is_external(self) -> bool:
        return self.addresses is not None

    @property
    def namespace(self) -> str | None:
        return self.workload.namespace if self.workload is not None else None

    @classmethod
    def of_workload(cls, workload: Workload) -> Endpoint:
        return cls(workload.ident, workload=workload)

    @classmethod
    def of_range(cls, addresses: IpRange) -> Endpoint:
        return cls(f"{addresses}[External]", addresses=addresses)


@dataclass(frozen=True, slots=True)
class Connection:
    src: Endpoint
    dst: Endpoint
    conns: ConnSet

    def __str__(self) -> str:
        return f"{self.src.label} => {self.dst.label} : {self.conns}"


class _Interner:
    """ConnSets as small integers, with cached unions and intersections."""

    def __init__(self) -> None:
        self.sets: list[ConnSet] = [EMPTY, ALL]
        self.ids: dict[ConnSet, int] = {EMPTY: _EMPTY_ID, ALL: _ALL_ID}
        self._union: dict[int, int] = {}
        self._inter: dict[int, int] = {}

    def id(self, conns: ConnSet) -> int:
        found = self.ids.get(conns)
        if found is None:
            found = self.ids[conns] = len(self.sets)
            self.sets.append(conns)
        return found

    def union(self, a: int, b: int) -> int:
        if a == b or b == _EMPTY_ID or a == _ALL_ID:
            return a
        if a == _EMPTY_ID or b == _ALL_ID:
            return b
        key = (min(a, b) << _SHIFT) | max(a, b)
        found = self._union.get(key)
        if found is None:
            found = self._union[key] = self.id(self.sets[a] | self.sets[b])
        return found

    def inter(self, a: int, b: int) -> int:
        if a == b or b == _ALL_ID or a == _EMPTY_ID:
            return a
        if a == _ALL_ID or b == _EMPTY_ID:
            return b
        key = (min(a, b) << _SHIFT) | max(a, b)
        found = self._inter.get(key)
        if found is None:
            found = self._inter[key] = self.id(self.sets[a] & self.sets[b])
        return found

    def combine(self, a: IntArray, b: IntArray, union: bool) -> IntArray:
        """Element-wise union or intersection of two id arrays of one shape."""
        import numpy as np

        keys = (a.astype(np.int64) << _SHIFT) | b.astype(np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
        op = self.union if union else self.inter
        mask = (1 << _SHIFT) - 1
        values = np.fromiter(
            (op(int(k) >> _SHIFT, int(k) & mask) for k in unique), dtype=np.int64, count=len(unique)
        )
        return values[inverse].reshape(a.shape)


def analyse(model: NetworkModel) -> Analysis:
    return Analysis(model)


class Analysis:
    """The classes, rows and connections of one model; build once, query many times."""

    def __init__(self, model: NetworkModel) -> None:
        import numpy as np

        self.model = model
        self._ids = _Interner()
        policies = model.policies
        pod_keys: set[str] = set()
        port_names: set[str] = set()
        blocks: list[IpRange] = []
        for policy in policies:
            pod_keys |= policy.pod_selector.keys
            for rule in (*policy.ingress, *policy.egress):
                for peer in rule.peers or ():
                    if isinstance(peer, SelectorPeer) and peer.pod_selector is not None:
                        pod_keys |= peer.pod_selector.keys
                    elif isinstance(peer, IpBlockPeer):
                        blocks.extend(peer.ranges)
                for spec in rule.ports or ():
                    if isinstance(spec.port, str):
                        port_names.add(spec.port)
        self.atoms = atoms(blocks)
        self._atom_keys = [(a.version, a.lo) for a in self.atoms]
        any_block = bool(blocks)

        # Classes of pods.
        self.namespaces = list(model.namespaces)
        ns_index = {name: i for i, name in enumerate(self.namespaces)}
        keys = sorted(pod_keys)
        class_of: dict[tuple[object, ...], int] = {}
        self.reps: list[Pod] = []
        self.class_workloads: list[list[int]] = []
        self.workload_classes: list[list[int]] = []
        class_ns: list[int] = []
        class_atoms: list[tuple[int, ...]] = []
        for w_index, workload in enumerate(model.workloads):
            mine: list[int] = []
            for pod in workload.pods:
                labels = tuple((k, pod.labels.get(k)) for k in keys)
                named = tuple(
                    sorted((n, pod.named_ports[n]) for n in port_names if n in pod.named_ports)
                )
                pod_atoms = (
                    tuple(sorted({self._atom_at(v, a) for v, a in pod.ips})) if any_block else ()
                )
                class_key = (pod.namespace, labels, named, pod_atoms, pod.host_network)
                c = class_of.get(class_key)
                if c is None:
                    c = class_of[class_key] = len(self.reps)
                    self.reps.append(pod)
                    self.class_workloads.append([])
                    class_ns.append(ns_index[pod.namespace])
                    class_atoms.append(pod_atoms)
                if c not in mine:
                    mine.append(c)
                    self.class_workloads[c].append(w_index)
            self.workload_classes.append(mine)
        n = self.n_classes = len(self.reps)
        e = len(self.atoms)
        self.n_peers = n + e
        self._class_ns = np.array(class_ns, dtype=np.int64)
        self._class_atoms = class_atoms
        # hostNetwork classes: never isolated, and every rule's verdict towards them is ALL
        self._host = np.flatnonzero(np.array([p.host_network for p in self.reps], dtype=bool))

        # Label values per relevant key, as integer codes (-1: key absent).
        self._codes: dict[str, IntArray] = {}
        self._values: dict[str, dict[str, int]] = {}
        for label in keys:
            values: dict[str, int] = {}
            codes = np.full(n, -1, dtype=np.int64)
            for c, pod in enumerate(self.reps):
                value = pod.labels.get(label)
                if value is not None:
                    codes[c] = values.setdefault(value, len(values))
            self._codes[label], self._values[label] = codes, values

        self._pod_sel: dict[LabelSelector, BoolArray] = {}
        self._ns_sel: dict[LabelSelector, BoolArray] = {}
        self._in_ns: dict[str, BoolArray] = {}
        self._peer_cache: dict[tuple[object, ...], BoolArray] = {}

        # Which policies select which classes, per direction.
        self._subjects: list[tuple[Policy, BoolArray]] = [
            (p, self._in_namespace(p.namespace) & self._pods(p.pod_selector)) for p in policies
        ]
        self.ingress_sig, self.ingress_rows = self._rows(Direction.INGRESS)
        self.egress_sig, self.egress_rows = self._rows(Direction.EGRESS)
        self._connections: list[Connection] | None = None

    # -- selectors -------------------------------------------------------------------------

    def _pods(self, selector: LabelSelector) -> BoolArray:
        import numpy as np

        found = self._pod_sel.get(selector)
        if found is not None:
            return found
        result = np.ones(self.n_classes, dtype=bool)
        for r in selector.requirements:
            codes = self._codes[r.key]
            known = [self._values[r.key][v] for v in r.values if v in self._values[r.key]]
            match r.operator:
                case Operator.IN:
                    result &= np.isin(codes, known)
                case Operator.NOT_IN:
                    result &= ~np.isin(codes, known)
                case Operator.EXISTS:
                    result &= codes >= 0
                case Operator.DOES_NOT_EXIST:
                    result &= codes < 0
        self._pod_sel[selector] = result
        return result

    def _namespaces(self, selector: LabelSelector) -> BoolArray:
        import numpy as np

        found = self._ns_sel.get(selector)
        if found is None:
            by_ns = np.array(
                [selector.matches(self.model.namespace_labels(ns)) for ns in self.namespaces],
                dtype=bool,
            )
            found = self._ns_sel[selector] = (
                by_ns[self._class_ns] if self.n_classes else np.zeros(0, dtype=bool)
            )
        return found

    def _in_namespace(self, namespace: str) -> BoolArray:
        found = self._in_ns.get(namespace)
        if found is None:
            index = self.namespaces.index(namespace) if namespace in self.namespaces else -1
            found = self._in_ns[namespace] = self._class_ns == index
        return found

    def _atom_at(self, version: int, value: int) -> int:
        return bisect.bisect_right(self._atom_keys, (version, value)) - 1

    def _atoms_within(self, ranges: Sequence[IpRange]) -> list[int]:
        """The indices of the atoms inside `ranges`, found by bisection: atoms are sorted and
        never straddle a block boundary, so each range is one run of consecutive atoms (the
        cost is the number of atoms found, not the number that exist)."""
        found: list[int] = []
        for r in ranges:
            first = bisect.bisect_left(self._atom_keys, (r.version, r.lo))
            last = bisect.bisect_right(self._atom_keys, (r.version, r.hi))
            found.extend(range(first, last))
        return found

    def peers(self, rule: Rule, namespace: str) -> BoolArray:
        """Which classes and external atoms (in that order) a rule's peers match."""
        import numpy as np

        if rule.peers is None:
            return np.ones(self.n_peers, dtype=bool)
        key = (namespace, rule.peers)
        found = self._peer_cache.get(key)
        if found is not None:
            return found
        result = np.zeros(self.n_peers, dtype=bool)
        n = self.n_classes
        inside: list[int] = []  # external atoms inside any ipBlock of the rule
        for peer in rule.peers:
            if isinstance(peer, SelectorPeer):
                part = (
                    self._in_namespace(namespace)
                    if peer.namespace_selector is None
                    else self._namespaces(peer.namespace_selector)
                )
                if peer.pod_selector is not None:
                    part = part & self._pods(peer.pod_selector)
                result[:n] |= part
            else:
                inside.extend(self._atoms_within(peer.ranges))
        if inside:
            result[n + np.array(inside, dtype=np.int64)] = True
            members = set(inside)
            for c, pod_atoms in enumerate(self._class_atoms):
                if any(a in members for a in pod_atoms):
                    result[c] = True
        self._peer_cache[key] = result
        return result

    # -- rows ------------------------------------------------------------------------------

    def _rule_ids(self, rule: Rule) -> IntArray | int:
        """What a rule allows towards each peer: one id, or one per peer (named ports)."""
        import numpy as np

        if not rule.named_ports or rule.direction is Direction.INGRESS:
            return -1  # resolved per subject (ingress) or constant; see _rows
        ids = np.empty(self.n_peers, dtype=np.int64)
        cache: dict[object, int] = {}
        for c, pod in enumerate(self.reps):
            sig = tuple(sorted(pod.named_ports.items()))
            found = cache.get(sig)
            if found is None:
                found = cache[sig] = self._ids.id(rule.conns(pod))
            ids[c] = found
        ids[self.n_classes :] = self._ids.id(rule.conns(None))
        return ids

    def _rows(self, direction: Direction) -> tuple[IntArray, list[IntArray]]:
        """Per class, the index of its row (-1: not isolated) and the distinct rows."""
        import numpy as np

        n = self.n_classes
        applying: list[list[Policy]] = [[] for _ in range(n)]
        for policy, subject in self._subjects:
            if direction in policy.types:
                for selected in np.flatnonzero(subject).tolist():
                    applying[selected].append(policy)
        for host in self._host.tolist():
            applying[host] = []  # selected or not, a hostNetwork pod is not isolated
        sig_index = np.full(n, -1, dtype=np.int64)
        rows: list[IntArray] = []
        by_sig: dict[tuple[object, ...], int] = {}
        per_peer: dict[int, IntArray | int] = {}
        constant: dict[int, int] = {}  # id(rule) -> its id, for rules without named ports
        for c in range(n):
            if not applying[c]:
                continue
            parts: list[tuple[Rule, str, int]] = []
            for policy in applying[c]:
                for rule in policy.rules(direction):
                    if direction is Direction.INGRESS and rule.named_ports:
                        cid = self._ids.id(rule.conns(self.reps[c]))
                    elif rule.named_ports:
                        cid = -1
                    else:
                        cid = constant.get(id(rule), -1)
                        if cid < 0:
                            cid = constant[id(rule)] = self._ids.id(rule.conns(None))
                    if cid != _EMPTY_ID:
                        parts.append((rule, policy.namespace, cid))
            sig = tuple((id(rule), ns, cid) for rule, ns, cid in parts)
            found = by_sig.get(sig)
            if found is None:
                found = by_sig[sig] = len(rows)
                rows.append(self._row(parts, per_peer))
            sig_index[c] = int(found)
        return sig_index, rows

    def _row(
        self, parts: list[tuple[Rule, str, int]], per_peer: dict[int, IntArray | int]
    ) -> IntArray:
        """Per peer, the id of the union of what the rules of `parts` allow it.

        Each distinct id gets the mask of the peers it reaches, peers are grouped by the set of
        ids they get, and each group's union is made once from all its sets: folding the rules
        one by one made and interned every partial union (8,000 rules, one port each: 30 s and
        2.3 GB for the partial unions alone)."""
        import numpy as np

        masks: dict[int, BoolArray] = {}
        for rule, ns, cid in parts:
            match = self.peers(rule, ns)
            if cid >= 0:
                found = masks.get(cid)
                masks[cid] = match.copy() if found is None else found | match
                continue
            ids = per_peer.get(id(rule))
            if ids is None:
                ids = per_peer[id(rule)] = self._rule_ids(rule)
            assert not isinstance(ids, int)
            for value in np.unique(ids[match]).tolist():
                if value == _EMPTY_ID:
                    continue
                hit = match & (ids == value)
                found = masks.get(value)
                masks[value] = hit if found is None else found | hit
        if not masks:
            row = np.zeros(self.n_peers, dtype=np.int64)
            row[self._host] = _ALL_ID  # traffic with a hostNetwork pod is its node's
            return row
        order = list(masks)
        bits = 62  # bits per word of a group's key
        keys = np.zeros((self.n_peers, (len(order) + bits - 1) // bits), dtype=np.int64)
        for k, cid in enumerate(order):
            keys[:, k // bits] |= masks[cid].astype(np.int64) << (k % bits)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        values = np.empty(len(unique), dtype=np.int64)
        sets = self._ids.sets
        for g, words in enumerate(unique.tolist()):
            members = []
            for w, word in enumerate(words):
                while word:  # the set bits only: a group costs its members, not every id
                    low = word & -word
                    members.append(order[w * bits + low.bit_length() - 1])
                    word ^= low
            if len(members) == 1:
                values[g] = members[0]
            else:
                values[g] = self._ids.id(ConnSet.union_of(sets[m] for m in members))
        row = values[np.asarray(inverse).reshape(-1)]
        row[self._host] = _ALL_ID  # traffic with a hostNetwork pod is its node's
        return row

    def row(self, direction: Direction, c: int) -> IntArray:
        """The ids a class allows per peer in one direction (all ALL when not isolated)."""
        import numpy as np

        sig = (self.ingress_sig if direction is Direction.INGRESS else self.egress_sig)[c]
        if sig < 0:
            return np.full(self.n_peers, _ALL_ID, dtype=np.int64)
        rows = self.ingress_rows if direction is Direction.INGRESS else self.egress_rows
        return rows[int(sig)]

    def isolated(self, direction: Direction, c: int) -> bool:
        sig = self.ingress_sig if direction is Direction.INGRESS else self.egress_sig
        return bool(sig[c] >= 0)

    def _stacked(self, direction: Direction) -> IntArray:
        """One row per class (n x peers), shared rows expanded; ALL rows for non-isolated."""
        import numpy as np

        sig = self.ingress_sig if direction is Direction.INGRESS else self.egress_sig
        rows = self.ingress_rows if direction is Direction.INGRESS else self.egress_rows
        table = np.vstack([*rows, np.full(self.n_peers, _ALL_ID, dtype=np.int64)])
        return table[np.where(sig >= 0, sig, len(rows))]

    # -- results ---------------------------------------------------------------------------

    def class_matrix(self) -> Iterator[tuple[int, int, int]]:
        """(source class, destination class, connection id) for every allowed class pair."""
        import numpy as np

        n = self.n_classes
        if n == 0:
            return
        ids = self._ids
        eg_sig = self.egress_sig
        eg_table = np.vstack([*self.egress_rows, np.full(self.n_peers, _ALL_ID, dtype=np.int64)])
        eg_pick = np.where(eg_sig >= 0, eg_sig, len(self.egress_rows))
        in_sig = self.ingress_sig
        in_table = np.vstack([*self.ingress_rows, np.full(self.n_peers, _ALL_ID, dtype=np.int64)])
        in_pick = np.where(in_sig >= 0, in_sig, len(self.ingress_rows))
        block = max(1, _BLOCK_CELLS // n)
        for start in range(0, n, block):
            dst = np.arange(start, min(n, start + block))
            egress = eg_table[:, dst][eg_pick]  # sources x block
            ingress = in_table[in_pick[dst]][:, :n].T  # sources x block
            both = ids.combine(egress, ingress, False)
            src_idx, dst_idx = np.nonzero(both)
            for s, d in zip(src_idx.tolist(), dst_idx.tolist(), strict=True):
                yield s, int(dst[d]), int(both[s, d])

    def connections(self) -> list[Connection]:
        """Every allowed connection between workloads and external ranges, sorted."""
        if self._connections is not None:
            return self._connections
        import numpy as np

        ids = self._ids
        workloads = self.model.workloads
        ends = [Endpoint.of_workload(w) for w in workloads]
        pairs: dict[tuple[int, int], int] = {}
        for s, d, cid in self.class_matrix():
            for ws in self.class_workloads[s]:
                for wd in self.class_workloads[d]:
                    if ws == wd:
                        continue
                    key = (ws, wd)
                    old = pairs.get(key)
                    pairs[key] = cid if old is None else ids.union(old, cid)
        out = [Connection(ends[s], ends[d], ids.sets[c]) for (s, d), c in pairs.items()]

        n = self.n_classes
        if self.atoms and n:
            inbound = self._stacked(Direction.INGRESS)[:, n:]  # dst class x atoms
            outbound = self._stacked(Direction.EGRESS)[:, n:]  # src class x atoms
            for w_index, classes in enumerate(self.workload_classes):
                for table, towards in ((inbound, True), (outbound, False)):
                    merged: dict[int, int] = {}
                    for c in classes:
                        for a in np.flatnonzero(table[c]).tolist():
                            old = merged.get(a)
                            cid = int(table[c, a])
                            merged[a] = cid if old is None else ids.union(old, cid)
                    segments = merge_segments((self.atoms[a], cid) for a, cid in merged.items())
                    for addresses, cid in segments:
                        ext = Endpoint.of_range(addresses)
                        if towards:
                            out.append(Connection(ext, ends[w_index], ids.sets[cid]))
                        else:
                            out.append(Connection(ends[w_index], ext, ids.sets[cid]))
        out.sort(key=lambda c: (c.src.label, c.dst.label))
        self._connections = out
        return out

    def workload_pair(self, src: int, dst: int) -> ConnSet:
        """What workload `src` may open to workload `dst` (indices into model.workloads)."""
        ids = self._ids
        total = _EMPTY_ID
        for s in self.workload_classes[src]:
            eg = self.row(Direction.EGRESS, s)
            for d in self.workload_classes[dst]:
                inn = self.row(Direction.INGRESS, d)
                total = ids.union(total, ids.inter(int(eg[d]), int(inn[s])))
        return ids.sets[total]

    def class_of(self, workload: int) -> Sequence[int]:
        return self.workload_classes[workload]
