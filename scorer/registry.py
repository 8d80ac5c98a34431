"""One registry for every plug-in kind (spaces, datasets, proxies), after timm's `_registry.py`.

An entry is registered once and carries both halves of a plug-in: its metadata (a frozen
dataclass per kind, with a `name`) and its implementation, given either as the object itself or
as a lazy ``"package.module:attribute"`` reference that is imported on the first `get`. So
listing, alias resolution and metadata (`info`) never import an implementation, which is what
lets the API and spec validation stay torch-free, and `get` imports just the module it needs.
Duplicate names are refused; an unknown name fails with a message that lists what exists.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Generic, Iterator, Protocol, TypeVar


class UnknownNameError(ValueError):
    """Raised for a name no plug-in was registered under."""


class Named(Protocol):
    """What a registry's metadata must have: the canonical name it is registered under."""

    @property
    def name(self) -> str: ...


M = TypeVar("M", bound=Named)
T = TypeVar("T")


def _parse(reference: str) -> tuple[str, str]:
    module, sep, attribute = reference.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"a lazy implementation is written 'package.module:attribute', not {reference!r}")
    return module, attribute


def resolve(reference: str) -> object:
    """Import the module of "package.module:attribute" and return the attribute."""
    module, attribute = _parse(reference)
    target: object = import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's module-level `__getattr__` that imports `exports[name]` (a module) on first access of
    `name`: how `scorer`, `scorer.data` and `scorer.proxies` offer their torch-side names without
    importing torch when the package itself is imported."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class Registry(Generic[M, T]):
    """Named plug-ins of one kind: metadata now, implementation on first `get`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._info: dict[str, M] = {}
        self._impl: dict[str, T | str] = {}  # the object, or its "module:attribute" until first resolved
        self._aliases: dict[str, str] = {}

    def add(self, info: M, impl: T | str, *aliases: str) -> None:
        """Register `impl` (an object, or a lazy "module:attribute") under `info.name` and `aliases`."""
        name = info.name
        if isinstance(impl, str):
            try:
                _parse(impl)
            except ValueError as error:
                raise ValueError(f"{self.kind} {name!r}: {error}") from None
        for key in (name, *aliases):
            if key in self._info or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered")
        if len(set(aliases)) != len(aliases) or name in aliases:
            raise ValueError(f"{self.kind} {name!r}: its aliases repeat a name: {', '.join(aliases)}")
        self._info[name] = info
        self._impl[name] = impl
        for alias in aliases:
            self._aliases[alias] = name

    def register(self, info: M, *aliases: str) -> Callable[[T], T]:
        """Decorator form of `add`: register the decorated object with `info`, return it unchanged."""

        def decorator(obj: T) -> T:
            self.add(info, obj, *aliases)
            return obj

        return decorator

    def canonical(self, name: str) -> str:
        """The registered name behind `name` (resolving aliases)."""
        key = self._aliases.get(name, name)
        if key not in self._info:
            known = ", ".join(self.names())
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {known}")
        return key

    def info(self, name: str) -> M:
        """The metadata of `name` (or an alias); never imports the implementation."""
        return self._info[self.canonical(name)]

    def get(self, name: str) -> T:
        """The implementation of `name` (or an alias), importing a lazy one on first use."""
        key = self.canonical(name)
        impl = self._impl[key]
        if isinstance(impl, str):
            try:
                resolved = resolve(str(impl))
            except (ImportError, AttributeError) as error:
                raise ImportError(f"{self.kind} {key!r} is implemented by {impl}, which cannot be "
                                  f"imported: {error}") from error
            self._impl[key] = impl = resolved  # type: ignore[assignment]
        return impl  # type: ignore[return-value]

    def reference(self, name: str) -> str | None:
        """The lazy "module:attribute" of `name` while it is not yet imported, else None."""
        impl = self._impl[self.canonical(name)]
        return impl if isinstance(impl, str) else None

    def names(self) -> list[str]:
        return sorted(self._info)

    def infos(self) -> list[M]:
        """Every entry's metadata, by name."""
        return [self._info[name] for name in self.names()]

    def aliases(self) -> dict[str, str]:
        """alias -> canonical name, for every alias."""
        return dict(self._aliases)

    def aliases_of(self, name: str) -> tuple[str, ...]:
        """The aliases of `name`, in the order they were registered."""
        key = self.canonical(name)
        return tuple(alias for alias, target in self._aliases.items() if target == key)

    def __contains__(self, name: object) -> bool:
        return name in self._info or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._info)
