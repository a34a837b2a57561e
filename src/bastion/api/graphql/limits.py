"""What a GraphQL query may cost, checked on the parsed document before anything runs.

- **tokens**: the parser stops at ``max_tokens`` (graphql-core's own ``max_tokens``),
  so a huge document is never even built;
- **depth**: the longest chain of nested selection sets, fragments expanded:
  ``{ me { id } }`` is 1 and ``{ me { orders { items { product { id } } } } }`` is 4 (the
  convention of graphql-depth-limit and strawberry's ``QueryDepthLimiter``). The
  subtrees of ``__schema`` and ``__type`` are exempt; introspection is off in
  production, and in development the token limit bounds them;
- **aliases**: every aliased field, counted once per place a fragment is spread, so that
  ``{ ...A ...B }`` over fragments full of aliases cannot multiply past the limit;
- **first**: each ``first`` argument, written in the query or passed as a variable.

Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` walk a fragment again at
every place it is spread: ``fragment F1 { ...F2 ...F2 }``, ``F2 { ...F3 ...F3 }`` and so
on take time exponential in the chain's length, a few hundred tokens stall the event
loop for minutes. Here each fragment is measured once, in dependency order, so the
check takes time linear in the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    parse,
    visit,
)
from graphql.language import Visitor

from bastion.security import BastionError

__all__ = ["GraphQLLimits", "QueryRejected", "check_limits", "parse_query"]

_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True, slots=True)
class GraphQLLimits:
    """The limits of one endpoint. Each must be at least 1; raises :class:`ValueError`."""

    max_depth: int = 6
    max_aliases: int = 15
    max_tokens: int = 1000
    max_first: int = 100

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_aliases", "max_tokens", "max_first"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, not {value!r}")


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a query is refused: ``pointer`` into the request body, and why."""

    pointer: str
    detail: str


class QueryRejected(BastionError):
    """The query cannot run. ``over_limit`` tells a limit from plain invalid syntax."""

    def __init__(self, problems: list[Problem], *, over_limit: bool, reason: str) -> None:
        super().__init__(reason)
        self.problems = problems
        self.over_limit = over_limit
        self.reason = reason


def parse_query(query: str, limits: GraphQLLimits) -> DocumentNode:
    """The parsed document, or :class:`QueryRejected` (too many tokens, bad syntax)."""
    try:
        return parse(query, max_tokens=limits.max_tokens)
    except GraphQLSyntaxError as exc:
        if f"more than {limits.max_tokens} tokens" in exc.message:
            n = limits.max_tokens
            detail = f"The query has more than {n} tokens; at most {n} are allowed."
            raise QueryRejected(
                [Problem("#/query", detail)], over_limit=True, reason="graphql token limit"
            ) from None
        raise QueryRejected(
            [Problem("#/query", _located(exc))], over_limit=False, reason="graphql syntax error"
        ) from None


def _located(error: GraphQLSyntaxError) -> str:
    where = error.locations[0] if error.locations else None
    suffix = f" (line {where.line}, column {where.column})" if where else ""
    return f"{error.message}{suffix}"


def check_limits(
    document: DocumentNode, variables: Mapping[str, Any], limits: GraphQLLimits
) -> None:
    """Raise :class:`QueryRejected` if the document is over the depth, alias or
    ``first`` limit; ``variables`` are the request's, to check ``first: $n``."""
    problems: list[Problem] = []
    reasons: list[str] = []
    depth, aliases = _measure(document)
    if depth > limits.max_depth:
        problems.append(
            Problem(
                "#/query",
                f"The query is {depth} levels deep; at most {limits.max_depth} are allowed.",
            )
        )
        reasons.append("depth")
    if aliases > limits.max_aliases:
        problems.append(
            Problem(
                "#/query",
                f"The query uses {_count(aliases)} aliases;"
                f" at most {limits.max_aliases} are allowed.",
            )
        )
        reasons.append("aliases")
    for pointer, value in _first_arguments(document, variables):
        if not 1 <= value <= limits.max_first:
            shown = value if abs(value) < 10**9 else "a larger number"
            problems.append(
                Problem(pointer, f"first must be between 1 and {limits.max_first}, not {shown}.")
            )
            reasons.append("first")
    if problems:
        reason = "graphql limit: " + ", ".join(dict.fromkeys(reasons))
        raise QueryRejected(problems, over_limit=True, reason=reason)


def _count(n: int) -> str:
    return str(n) if n <= 1_000_000 else "over a million"


# ------------------------------------------------------------------------ depth, aliases


def _measure(document: DocumentNode) -> tuple[int, int]:
    """(depth, aliases) of the document: the deepest operation, all operations' aliases."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, tuple[int, int]] = {}
    for name in _dependency_order(fragments):
        memo[name] = _selection_set(fragments[name].selection_set, memo)
    depth = aliases = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            d, a = _selection_set(definition.selection_set, memo)
            depth = max(depth, d)
            aliases += a
    return depth, aliases


def _dependency_order(fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after every fragment it spreads (iterative, so a long chain
    cannot exhaust the stack). A cycle is broken where it is found: such a document is
    invalid anyway, and graphql-core's validation says so."""
    order: list[str] = []
    state: dict[str, bool] = {}  # False: being visited, True: done
    for root in fragments:
        if root in state:
            continue
        stack: list[tuple[str, list[str]]] = [(root, _spreads(fragments[root]))]
        state[root] = False
        while stack:
            name, pending = stack[-1]
            while pending and (pending[-1] in state or pending[-1] not in fragments):
                pending.pop()
            if pending:
                child = pending.pop()
                state[child] = False
                stack.append((child, _spreads(fragments[child])))
            else:
                stack.pop()
                state[name] = True
                order.append(name)
    return order


def _spreads(fragment: FragmentDefinitionNode) -> list[str]:
    names: list[str] = []

    class Spreads(Visitor):
        def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
            names.append(node.name.value)

    visit(fragment.selection_set, Spreads())
    return names


def _selection_set(
    selection_set: SelectionSetNode, memo: Mapping[str, tuple[int, int]]
) -> tuple[int, int]:
    """(depth, aliases) below one selection set. Recursion here only follows the nesting
    of one definition, which the parser caps; fragments come from ``memo``."""
    depth = aliases = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.alias is not None:
                aliases += 1
            if selection.selection_set is not None:
                d, a = _selection_set(selection.selection_set, memo)
                aliases += a
                if selection.name.value not in _INTROSPECTION_ROOTS:
                    depth = max(depth, 1 + d)
        elif isinstance(selection, InlineFragmentNode):
            d, a = _selection_set(selection.selection_set, memo)
            depth, aliases = max(depth, d), aliases + a
        elif isinstance(selection, FragmentSpreadNode):
            d, a = memo.get(selection.name.value, (0, 0))
            depth, aliases = max(depth, d), aliases + a
    return depth, aliases


# ---------------------------------------------------------------------------------- first


def _first_arguments(document: DocumentNode, variables: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(pointer, value) of every integer given to an argument named ``first``, whether
    written in the query, passed as a variable, or a variable's default."""
    defaults: dict[str, Any] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for var in definition.variable_definitions or ():
                if isinstance(var.default_value, IntValueNode):
                    defaults.setdefault(var.variable.name.value, int(var.default_value.value))
    found: list[tuple[str, int]] = []

    class Firsts(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            for argument in node.arguments or ():
                if argument.name.value != "first":
                    continue
                value = argument.value
                if isinstance(value, IntValueNode):
                    found.append(("#/query", int(value.value)))
                elif isinstance(value, VariableNode):
                    name = value.name.value
                    given = variables.get(name, defaults.get(name))
                    if isinstance(given, int) and not isinstance(given, bool):
                        found.append((f"#/variables/{_escape(name)}", given))

    visit(document, Firsts())
    return found


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
