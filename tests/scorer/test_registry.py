"""The plug-in registries: one entry per plug-in, metadata now, implementation on first use.

Parametrised over the registries (timm-style), so every proxy and dataset, built-in or plug-in,
gets the same checks: its lazy implementation resolves and agrees with its metadata.
"""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, fields
from types import SimpleNamespace

import pytest
import torch

from scorer.data import DATASETS, DatasetInfo, DatasetNotFoundError, load_split, probe_batch
from scorer.proxies import PROXIES, ProxyInfo, get_proxy
from scorer.registry import Registry, UnknownNameError
from tests.support.paths import REPO, SHARED_DATA



def _run(code: str, **env: str) -> None:
    """Run `code` in a fresh interpreter (nothing imported yet) from the repository root."""
    environ = {**os.environ, **env}
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, cwd=REPO, env=environ, timeout=120)


# ---------------------------------------------------------------- torch-free listing and validation

def test_listing_aliases_and_spec_validation_never_import_torch():
    _run("""
        import sys
        from click.testing import CliRunner

        from api.routes import catalog as routes
        from knas.cli.main import cli
        from knas.jobspec import JobSpec
        from scorer.data import DATASETS
        from scorer.proxies import PROXIES
        from scorer.spaces import SPACES
        from worker.jobs import check_spec

        assert PROXIES.canonical("knas") == "mgm" and DATASETS.info("npz").name == "cifar10-sample"
        assert "mgm" in [p.name for p in routes.list_proxies()] and SPACES.canonical("nb201") == "nats-tss"
        spec = check_spec(JobSpec(dataset="cifar-10", proxy={"name": "jacob_cov"}, constraints={"max_params": 10**6}))
        assert (spec.dataset, spec.proxy.name) == ("cifar10", "jacov")
        out = CliRunner().invoke(cli, ["proxies"])
        assert out.exit_code == 0 and "synflow" in out.output, out.output
        assert "torch" not in sys.modules, "torch was imported"
        loaded = [m for m in sys.modules if m.startswith(("scorer.proxies.", "scorer.data."))]
        assert set(loaded) <= {"scorer.proxies.registry", "scorer.data.registry", "scorer.data.base"}, loaded
    """)


def test_getting_an_implementation_imports_just_its_module():
    _run("""
        import sys
        from scorer.data import get_dataset
        from scorer.proxies import get_proxy

        get_proxy("param_count"), get_dataset("synthetic")
        assert {"scorer.proxies.params", "scorer.data.synthetic"} <= set(sys.modules)
        others = {"scorer.proxies.mgm", "scorer.proxies.az", "scorer.data.cifar", "scorer.data.digits"}
        assert not others & set(sys.modules), others & set(sys.modules)
    """)


def test_unknown_names_list_the_choices():
    with pytest.raises(UnknownNameError, match="mgm"):
        PROXIES.info("nope")
    with pytest.raises(ValueError, match="digits"):
        DATASETS.info("mnist")
    with pytest.raises(UnknownNameError, match="synflow"):
        get_proxy("nope")


# ---------------------------------------------------------------- every proxy, every dataset

@pytest.mark.parametrize("name", PROXIES.names())
def test_every_proxy_resolves_to_maths_that_match_its_metadata(name):
    from scorer.proxies.base import Proxy
    from scorer.proxies.probe import RECORDS

    info, fn = PROXIES.info(name), PROXIES.get(name)
    assert PROXIES.reference(name) is None  # imported now
    assert callable(fn) and len(inspect.signature(fn).parameters) >= 3  # (net, inputs, targets)
    proxy = get_proxy(name)
    assert isinstance(proxy, Proxy) and proxy.fn is fn
    assert {f.name: getattr(proxy, f.name) for f in fields(ProxyInfo)} == \
        {f.name: getattr(info, f.name) for f in fields(ProxyInfo)}
    assert info.description and info.version >= 1
    assert set(info.records) <= RECORDS and (info.shares_forward or not info.records)
    for part in info.components:  # an aggregate's parts are per-net proxies
        assert not PROXIES.info(part).components, part
    for alias in PROXIES.aliases_of(name):
        assert get_proxy(alias).name == name


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_resolves_to_a_loader_that_matches_its_metadata(name, tmp_path):
    info = DATASETS.info(name)
    loader = DATASETS.get(name)
    assert callable(loader.load) and callable(loader.check)
    assert getattr(loader, "info", info) is info  # a loader that carries metadata carries the registry's
    assert info.num_classes >= 2 and len(info.in_shape) == 3
    assert len(info.mean) == len(info.std) and len(info.mean) in (0, info.in_shape[0])
    for alias in DATASETS.aliases_of(name):
        assert DATASETS.get(alias) is loader
    if not info.embedded:  # presence (what the API reports) agrees with the loader
        assert info.files and not info.present(tmp_path) and not info.present(None)
        with pytest.raises(DatasetNotFoundError):
            loader.check(tmp_path)
    data_dir = None if info.embedded else SHARED_DATA
    if not info.present(data_dir):
        return  # its files are not in the shared data (test_data.py loads fakes of them)
    x, y = load_split(name, "valid", data_dir)
    assert tuple(x.shape[1:]) == info.in_shape and x.dtype == torch.float32
    assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < info.num_classes


# ---------------------------------------------------------------- the Registry itself

@dataclass(frozen=True)
class _Info:
    name: str


def test_duplicate_names_and_aliases_are_refused():
    registry: Registry[_Info, object] = Registry("widget")
    registry.add(_Info("a"), object(), "alias-a")
    for name, aliases in (("a", ()), ("alias-a", ()), ("b", ("a",)), ("c", ("alias-a",)), ("d", ("x", "x"))):
        with pytest.raises(ValueError, match="already registered|repeat"):
            registry.add(_Info(name), object(), *aliases)
    assert registry.names() == ["a"] and registry.aliases() == {"alias-a": "a"}  # nothing half-added
    with pytest.raises(ValueError, match="already registered"):
        DATASETS.add(DatasetInfo(name="npz", num_classes=2, in_shape=(1, 2, 2), description="x"), object())
    with pytest.raises(ValueError, match="already registered"):
        PROXIES.add(ProxyInfo("mine", "x"), "mine:fn", "knas")
    assert "mine" not in PROXIES


def test_a_lazy_implementation_is_imported_on_first_get(tmp_path, monkeypatch):
    (tmp_path / "lazy_widget_impl.py").write_text("IMPORTS = []\nIMPORTS.append(1)\nclass Box:\n    WIDGET = object()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[_Info, object] = Registry("widget")
    registry.add(_Info("w"), "lazy_widget_impl:Box.WIDGET", "ww")
    registry.add(_Info("broken"), "no_such_module_here:thing")
    assert "lazy_widget_impl" not in sys.modules and registry.reference("ww") == "lazy_widget_impl:Box.WIDGET"
    assert registry.info("ww") == _Info("w") and "lazy_widget_impl" not in sys.modules
    widget = registry.get("ww")
    module = sys.modules.pop("lazy_widget_impl")
    assert widget is module.Box.WIDGET and registry.get("w") is widget and module.IMPORTS == [1]
    with pytest.raises(ImportError, match="widget 'broken' is implemented by no_such_module_here:thing"):
        registry.get("broken")
    with pytest.raises(ValueError, match="module:attribute"):
        registry.add(_Info("bad"), "not-a-reference")


# ---------------------------------------------------------------- plug-ins: registered once, seen everywhere

def test_the_tiny_plugin_is_listed_validated_and_loaded_from_one_registration(store):
    """tests/plugins/tiny_dataset.py (imported by conftest) registered once; every reader sees it."""
    from api.routes import catalog as routes
    from knas.jobspec import JobSpec
    from worker.jobs import check_spec

    info = DATASETS.info("tiny")
    listed = {d.name: d for d in routes.list_datasets(SimpleNamespace(data_dir=None), store,
                                                      SimpleNamespace(admin=False))}
    assert listed["tiny"].in_shape == info.in_shape and listed["tiny"].present and listed["tiny"].embedded
    assert check_spec(JobSpec(dataset="tiny", candidates={"strategy": "random", "n": 4}, top_k=1)).dataset == "tiny"
    x, y = probe_batch("tiny", 8, seed=0)
    assert tuple(x.shape) == (8, *info.in_shape) and int(y.max()) < info.num_classes


def test_a_site_plugin_named_in_knas_plugins_registers_a_proxy_and_a_dataset_once(tmp_path):
    (tmp_path / "site_plugin.py").write_text(textwrap.dedent("""
        from scorer.data import DATASETS, DatasetInfo
        from scorer.proxies import PROXIES, ProxyInfo

        DATASETS.add(DatasetInfo(name="site-blobs", num_classes=2, in_shape=(1, 4, 4), description="site data",
                                 embedded=True), "site_impl:BLOBS", "blobs")
        PROXIES.add(ProxyInfo("site-width", "widest conv", needs_labels=False), "site_impl:width", "width")
    """))
    (tmp_path / "site_impl.py").write_text(textwrap.dedent("""
        import torch

        class Blobs:
            def load(self, split, data_dir):
                g = torch.Generator().manual_seed(len(split))
                y = torch.arange(20) % 2
                return torch.randn(20, 1, 4, 4, generator=g) + y.view(-1, 1, 1, 1), y

            def check(self, data_dir):
                pass

        BLOBS = Blobs()

        def width(net, inputs, targets):
            return float(max(m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)))
    """))
    _run("""
        import sys
        from click.testing import CliRunner

        from api.routes import catalog as routes
        from knas.cli.main import cli
        from knas.jobspec import JobSpec
        from knas.plugins import load_plugins
        from worker.jobs import check_spec

        assert load_plugins() == ["site_plugin"]
        assert "site-width" in [p.name for p in routes.list_proxies()]
        assert "site-width" in CliRunner().invoke(cli, ["proxies"]).output
        spec = check_spec(JobSpec(dataset="blobs", proxy={"name": "width"}, candidates={"strategy": "random", "n": 2}, top_k=1))
        assert (spec.dataset, spec.proxy.name) == ("site-blobs", "site-width")
        assert "torch" not in sys.modules and "site_impl" not in sys.modules

        import scorer
        x, y = scorer.probe_batch("blobs", 4, 0)
        assert tuple(x.shape) == (4, 1, 4, 4)
        result = scorer.score_arch("nats-tss", scorer.get_space("nats-tss").arch(0), "width", x, y, 0, 2)
        assert result.score == 64.0, result  # NAS-Bench-201 cells are 16, 32 and 64 channels wide
    """, KNAS_PLUGINS="site_plugin", PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
