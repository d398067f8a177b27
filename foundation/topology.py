"""The service graph: which service calls which (SPEC §14). Pure parsing and walking.

Edges come from three places, each remembered on the edge as its `origin`:
- `static`: `caller -> callee` strings in settings (`topology.edges`);
- `file`: a file (`topology.file`) of such lines, or a CSV adjacency matrix whose rows
  call its columns (the format of PetShop's `graph.csv`);
- `discovery:<name>`: series of a service-graph metric, one edge per (caller, callee)
  label pair (`edges_from_labels`).

A service name is any text without `->` and without surrounding spaces, so names such as
`PGSQL Query_remote` or `lambda::Function` are fine. A service calling itself is refused:
it explains nothing and would only hide a typo.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ARROW = "->"


class TopologyError(ValueError):
    """A graph that cannot be read; the message says where (line, cell) and why."""


@dataclass(frozen=True, order=True)
class Edge:
    caller: str
    callee: str
    origin: str = "static"


def parse_edge(text: str, origin: str = "static") -> Edge:
    """One `caller -> callee` string; TopologyError if it is not exactly that."""
    parts = text.split(ARROW)
    if len(parts) != 2:
        raise TopologyError(f"{text!r} is not `caller -> callee`")
    caller, callee = (part.strip() for part in parts)
    if not caller or not callee:
        raise TopologyError(f"{text!r} is not `caller -> callee` (a side is empty)")
    if caller == callee:
        raise TopologyError(f"{text!r}: a service cannot call itself")
    return Edge(caller, callee, origin)


def parse_edges(lines: Iterable[str], origin: str = "static") -> list[Edge]:
    """Every edge of `lines`; blank lines and `#` comments are skipped. Errors name the line."""
    edges = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            edges.append(parse_edge(text, origin))
        except TopologyError as err:
            raise TopologyError(f"line {number}: {err}") from None
    return edges


def parse_adjacency(text: str, origin: str = "file") -> list[Edge]:
    """A CSV adjacency matrix: the header names the callees, each row starts with its
    caller, and a non-zero cell is a call from the row's service to the column's."""
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise TopologyError("the adjacency matrix is empty")
    callees = [name.strip() for name in rows[0][1:]]
    if not callees or any(not name for name in callees):
        raise TopologyError("line 1: the header must name every column's service")
    edges = []
    for number, row in enumerate(rows[1:], start=2):
        caller = row[0].strip()
        if not caller:
            raise TopologyError(f"line {number}: the first cell must name the calling service")
        if len(row) - 1 != len(callees):
            raise TopologyError(f"line {number}: {len(row) - 1} cells for {len(callees)} columns")
        for callee, cell in zip(callees, row[1:], strict=True):
            try:
                weight = float(cell.strip() or 0)
            except ValueError:
                raise TopologyError(f"line {number}, column {callee!r}: {cell!r} is not a number") from None
            if weight == 0:
                continue
            if caller == callee:
                raise TopologyError(f"line {number}: {caller!r} cannot call itself")
            edges.append(Edge(caller, callee, origin))
    return edges


def read_file(path: Path | str) -> list[Edge]:
    """The edges of a topology file: `caller -> callee` lines, or else a CSV adjacency
    matrix (told apart by whether the first meaningful line holds `->`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TopologyError(f"cannot read {path}: {err}") from None
    first = next((line.split("#", 1)[0] for line in text.splitlines() if line.split("#", 1)[0].strip()), "")
    if ARROW in first:
        return parse_edges(text.splitlines(), "file")
    return parse_adjacency(text, "file")


def edges_from_labels(series_labels: Iterable[Mapping[str, str]], caller_label: str, callee_label: str,
                      origin: str) -> list[Edge]:
    """One edge per distinct (caller, callee) pair among the label sets of a discovery
    query's series. A series without both labels, or calling itself, gives no edge."""
    found = set()
    for labels in series_labels:
        caller, callee = labels.get(caller_label, "").strip(), labels.get(callee_label, "").strip()
        if caller and callee and caller != callee:
            found.add(Edge(caller, callee, origin))
    return sorted(found)


@dataclass(frozen=True)
class ServiceGraph:
    """Edges from every origin; the same call seen by several origins is kept once per origin."""

    edges: tuple[Edge, ...] = ()

    @classmethod
    def of(cls, *groups: Iterable[Edge]) -> ServiceGraph:
        return cls(tuple(sorted({edge for group in groups for edge in group})))

    @property
    def nodes(self) -> list[str]:
        return sorted({name for edge in self.edges for name in (edge.caller, edge.callee)})

    def callees(self) -> dict[str, list[str]]:
        """caller → the services it calls (each once, sorted), whatever the origin."""
        calls: dict[str, set[str]] = {}
        for edge in self.edges:
            calls.setdefault(edge.caller, set()).add(edge.callee)
        return {caller: sorted(names) for caller, names in sorted(calls.items())}


def candidates(callees: Mapping[str, Sequence[str]], symptom: str, max_depth: int,
               max_candidates: int) -> list[tuple[str, int]]:
    """The services a run examines, as (service, hops from the symptom): the symptom
    first, then its callees breadth first (by name within a depth), at most `max_depth`
    hops down and `max_candidates` services in all. A cycle is walked once."""
    chosen = [(symptom, 0)]
    seen = {symptom}
    frontier = [symptom]
    for depth in range(1, max_depth + 1):
        reached = sorted({callee for caller in frontier for callee in callees.get(caller, ())} - seen)
        for service in reached:
            if len(chosen) >= max_candidates:
                return chosen
            chosen.append((service, depth))
        seen.update(reached)
        frontier = reached
    return chosen
