"""Tests for sim.catalog: the shipped price catalogue and its pricing helpers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sim.catalog import (
    DESCRIBE_SCHEMA,
    HOURS_PER_MONTH,
    Catalog,
    CatalogError,
    Provenance,
    Tier,
    UnknownCatalogEntry,
    edge_amortised_usd_per_h,
    instance_usd_per_h,
    load_catalog,
    tiered_cost_usd,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _all_provenances(catalog: Catalog) -> list[tuple[str, Provenance]]:
    """Every entry's provenance and every per-figure override, labelled."""
    found: list[tuple[str, Provenance]] = []
    for section, entries in catalog.sections().items():
        for name, entry in entries.items():
            found.append((f"{section}/{name}", entry))
            for figure, origin in entry.figure_sources.items():
                found.append((f"{section}/{name}/{figure}", origin))
    return found


# A small valid catalogue; the validation tests each break one thing in a copy.
MINIMAL: dict[str, Any] = {
    "schema_version": 1,
    "currency": "USD",
    "compiled": "2026-12-03",
    "instances": {
        "x-cpu": {
            "provider": "aws",
            "region": "us-east-1",
            "gpu": None,
            "gpus": 0,
            "vcpus": 2,
            "memory_gib": 4,
            "on_demand_usd_per_h": 0.1,
            "committed_1y_usd_per_h": None,
            "committed_3y_usd_per_h": None,
            "spot_usd_per_h": 0.03,
            "source": "test",
            "source_date": "2026",
            "confidence": "estimate",
        }
    },
    "transfer": {
        "x-egress": {
            "kind": "internet_egress",
            "ingress_free": True,
            "tiers": [
                {"up_to_gb_per_month": 10, "usd_per_gb": 0.1},
                {"up_to_gb_per_month": None, "usd_per_gb": 0.05},
            ],
            "source": "test",
            "source_date": "2026",
            "confidence": "estimate",
        }
    },
    "cdn": {},
    "storage": {},
    "edge_hardware": {},
    "electricity": {},
}


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# --- the shipped catalogue -------------------------------------------------------


def test_shipped_catalogue_loads_once_and_every_section_has_entries(
    catalog: Catalog,
) -> None:
    assert load_catalog() is catalog
    for section, entries in catalog.sections().items():
        assert entries, f"section {section} is empty"


def test_shipped_catalogue_covers_the_required_hardware(catalog: Catalog) -> None:
    gpus_by_provider: dict[str, set[str]] = {}
    for entry in catalog.instance_entries.values():
        family = (entry.gpu or "cpu-only").split("-")[0]
        gpus_by_provider.setdefault(entry.provider, set()).add(family)

    assert {"H100", "A100", "L4", "A10G", "L40S", "cpu"} <= gpus_by_provider["aws"]
    assert {"H100", "A100", "L4", "cpu"} <= gpus_by_provider["gcp"]
    assert {"H100", "A100"} <= gpus_by_provider["azure"]

    eight_gpu_h100 = [
        e for e in catalog.instance_entries.values() if e.gpu == "H100-80GB"
    ]
    assert {e.provider for e in eight_gpu_h100 if e.gpus == 8} == {
        "aws",
        "gcp",
        "azure",
    }


def test_every_entry_and_override_has_source_date_and_confidence(
    catalog: Catalog,
) -> None:
    for label, origin in _all_provenances(catalog):
        assert origin.source.strip(), label
        assert origin.source_date.strip(), label
        assert origin.confidence in {"published", "third-party", "derived", "estimate"}


def test_every_estimate_or_derived_figure_says_how_it_was_made(
    catalog: Catalog,
) -> None:
    unexplained = [
        label
        for label, origin in _all_provenances(catalog)
        if origin.confidence in {"derived", "estimate"} and not origin.note
    ]
    assert unexplained == []


def test_no_figure_is_negative(catalog: Catalog) -> None:
    negative = catalog.describe().filter(pl.col("value") < 0)
    assert negative.height == 0, negative


def test_tiers_ascend_and_end_unbounded(catalog: Catalog) -> None:
    tiered = [e.tiers for e in catalog.transfer_entries.values() if e.tiers]
    tiered += [e.tiers for e in catalog.cdn_entries.values()]
    assert len(tiered) >= 5

    for tiers in tiered:
        bounds = [tier.up_to_gb_per_month for tier in tiers]
        assert bounds[-1] is None
        finite = [b for b in bounds[:-1] if b is not None]
        assert len(finite) == len(bounds) - 1
        assert finite == sorted(set(finite))


def test_google_cloud_volumes_are_in_gib(catalog: Catalog) -> None:
    gcp_transfer = [
        e for name, e in catalog.transfer_entries.items() if name.startswith("gcp-")
    ]
    assert gcp_transfer
    assert {e.unit for e in gcp_transfer} == {"GiB"}
    assert catalog.cdn("gcp-cloud-cdn-na-eu").unit == "GiB"
    assert catalog.storage("gcp-gcs-standard-us-central1").unit == "GiB"


# --- tiered_cost_usd -------------------------------------------------------------


def test_tiered_cost_across_a_tier_boundary_on_aws_egress(catalog: Catalog) -> None:
    egress = catalog.transfer("aws-internet-egress-us-east-1")
    assert egress.tiers is not None

    # 12,000 GB with 100 GB free leaves 11,900 billable GB:
    #   first 10,240 GB (10 TB) at 0.09  = 921.60
    #   next   1,660 GB         at 0.085 = 141.10
    #   total                            = 1,062.70 USD
    cost_usd = tiered_cost_usd(egress.tiers, 12_000, egress.free_gb_per_month)
    assert cost_usd == pytest.approx(1062.70, abs=0.005)


@pytest.mark.parametrize(
    ("gb_in_month", "expected_usd"),
    [
        (0, 0.0),
        (100, 0.0),  # all inside the free allowance
        (110, 1.0),  # 10 GB at 0.1
        (110.5, 1.025),  # 10 GB at 0.1 + 0.5 GB at 0.05
        (1_100, 50.5),  # 10 GB at 0.1 + 990 GB at 0.05
    ],
)
def test_tiered_cost_by_hand(gb_in_month: float, expected_usd: float) -> None:
    tiers = [
        Tier(up_to_gb_per_month=10, usd_per_gb=0.1),
        Tier(up_to_gb_per_month=None, usd_per_gb=0.05),
    ]
    cost_usd = tiered_cost_usd(tiers, gb_in_month, free_gb_per_month=100)
    assert cost_usd == pytest.approx(expected_usd, abs=1e-9)


def test_tiered_cost_refuses_negative_volume_and_unbounded_overflow() -> None:
    open_tiers = [Tier(up_to_gb_per_month=None, usd_per_gb=0.1)]
    with pytest.raises(ValueError, match="must be >= 0"):
        tiered_cost_usd(open_tiers, -1)

    closed_tiers = [Tier(up_to_gb_per_month=10, usd_per_gb=0.1)]
    with pytest.raises(ValueError, match="run past the last tier"):
        tiered_cost_usd(closed_tiers, 11)


@given(
    low=st.floats(min_value=0, max_value=1e7),
    extra=st.floats(min_value=0, max_value=1e7),
)
def test_tiered_cost_is_never_negative_and_never_falls_with_volume(
    low: float, extra: float
) -> None:
    tiers = load_catalog().transfer("aws-internet-egress-us-east-1").tiers
    assert tiers is not None
    cost_low = tiered_cost_usd(tiers, low, 100)
    cost_high = tiered_cost_usd(tiers, low + extra, 100)
    assert 0 <= cost_low <= cost_high + 1e-9


# --- lookups ---------------------------------------------------------------------


def test_unknown_name_reports_the_closest(catalog: Catalog) -> None:
    with pytest.raises(UnknownCatalogEntry) as caught:
        catalog.transfer("aws-internet-egres-us-east-1")

    err = caught.value
    assert isinstance(err, LookupError)
    assert err.section == "transfer"
    assert err.name == "aws-internet-egres-us-east-1"
    assert err.closest == "aws-internet-egress-us-east-1"
    assert err.known == sorted(catalog.transfer_entries)
    assert str(err) == (
        "unknown transfer entry 'aws-internet-egres-us-east-1'; "
        "did you mean 'aws-internet-egress-us-east-1'?"
    )


def test_unknown_name_with_nothing_close_lists_the_known_names(
    catalog: Catalog,
) -> None:
    with pytest.raises(UnknownCatalogEntry) as caught:
        catalog.electricity("zz")

    err = caught.value
    assert err.closest is None
    assert str(err) == (
        "unknown electricity entry 'zz'; known: " + ", ".join(err.known)
    )
    assert "us-va-commercial-2023" in err.known


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("instance", "aws-g6.xlarge"),
        ("transfer", "gcp-inter-zone-us-central1"),
        ("cdn", "aws-cloudfront-na-eu"),
        ("storage", "gcp-gcs-standard-us-central1"),
        ("edge_hardware", "jetson-agx-orin-64gb"),
        ("electricity", "us-va-commercial-2023"),
    ],
)
def test_each_lookup_finds_its_section(
    catalog: Catalog, method: str, name: str
) -> None:
    entry = getattr(catalog, method)(name)
    assert (
        entry
        is catalog.sections()["instances" if method == "instance" else method][name]
    )

    with pytest.raises(UnknownCatalogEntry, match=f"'{name}x'"):
        getattr(catalog, method)(name + "x")


# --- instance_usd_per_h and edge_amortised_usd_per_h ------------------------------


@pytest.mark.parametrize(
    ("pricing", "expected_usd_per_h"),
    [
        ("on_demand", 0.706832),
        ("committed_1y", 0.4453),
        ("committed_3y", 0.3181),
        ("spot", 0.279932),
    ],
)
def test_instance_price_picks_the_named_field(
    catalog: Catalog, pricing: Any, expected_usd_per_h: float
) -> None:
    entry = catalog.instance("gcp-g2-standard-4")
    assert instance_usd_per_h(entry, pricing) == expected_usd_per_h


def test_instance_price_refuses_an_unknown_price(catalog: Catalog) -> None:
    entry = catalog.instance("azure-nd96isr-h100-v5")
    assert instance_usd_per_h(entry, "on_demand") == 98.32
    with pytest.raises(ValueError, match="no spot price .* known: on_demand$"):
        instance_usd_per_h(entry, "spot")


def test_instance_price_refuses_an_unknown_pricing_model(catalog: Catalog) -> None:
    entry = catalog.instance("aws-g6.xlarge")
    with pytest.raises(ValueError, match="`pricing` must be one of"):
        instance_usd_per_h(entry, "reserved")  # type: ignore[arg-type]


def test_edge_amortisation_uses_730_hours_a_month(catalog: Catalog) -> None:
    assert HOURS_PER_MONTH == 730.0
    entry = catalog.edge_hardware("jetson-orin-nano-super-8gb")
    # 249 USD over 36 months of 730 h = 249 / 26,280 h
    assert edge_amortised_usd_per_h(entry) == pytest.approx(249 / 26_280)


# --- describe --------------------------------------------------------------------


def test_describe_has_one_row_per_figure_and_no_null_source(
    catalog: Catalog,
) -> None:
    table = catalog.describe()

    expected_rows = sum(
        len(entry.figures())
        for entries in catalog.sections().values()
        for entry in entries.values()
    )
    assert table.height == expected_rows
    assert dict(table.schema) == DESCRIBE_SCHEMA
    assert table.select(pl.all().null_count()).row(0) == (0,) * len(DESCRIBE_SCHEMA)
    assert not table.select("section", "name", "figure").is_duplicated().any()


def test_describe_uses_a_figures_own_source(catalog: Catalog) -> None:
    rows = catalog.describe().filter(pl.col("name") == "aws-g5.xlarge")
    confidence = dict(zip(rows["figure"], rows["confidence"], strict=True))
    assert confidence["on_demand_usd_per_h"] == "third-party"
    assert confidence["committed_1y_usd_per_h"] == "estimate"
    assert confidence["spot_usd_per_h"] == "derived"


def test_describe_leaves_out_prices_nobody_gives(catalog: Catalog) -> None:
    figures = (
        catalog.describe().filter(pl.col("name") == "azure-nd96isr-h100-v5")["figure"]
    ).to_list()
    assert "on_demand_usd_per_h" in figures
    assert "spot_usd_per_h" not in figures


# --- validation of a catalogue file ------------------------------------------------


def test_a_minimal_file_loads(tmp_path: Path) -> None:
    loaded = load_catalog(str(_write(tmp_path, MINIMAL)))
    assert loaded.instance("x-cpu").spot_usd_per_h == 0.03


def _broken(edit: str) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    instance = data["instances"]["x-cpu"]
    tiers = data["transfer"]["x-egress"]["tiers"]
    if edit == "negative price":
        instance["on_demand_usd_per_h"] = -0.1
    elif edit == "tiers descend":
        tiers.insert(0, {"up_to_gb_per_month": 20, "usd_per_gb": 0.2})
    elif edit == "tiers end bounded":
        tiers[-1]["up_to_gb_per_month"] = 50
    elif edit == "extra field":
        instance["colour"] = "blue"
    elif edit == "missing source":
        del instance["source"]
    elif edit == "bad name":
        data["instances"]["X_CPU"] = data["instances"].pop("x-cpu")
    elif edit == "stray figure source":
        instance["figure_sources"] = {
            "price": {"source": "s", "source_date": "d", "confidence": "estimate"}
        }
    elif edit == "gpu without count":
        instance["gpu"] = "L4-24GB"
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("negative price", "greater than or equal to 0"),
        ("tiers descend", "must ascend strictly"),
        ("tiers end bounded", "last tier must have"),
        ("extra field", "Extra inputs are not permitted"),
        ("missing source", "source"),
        ("bad name", "kebab-case"),
        ("stray figure source", "not figures of this entry"),
        ("gpu without count", "`gpu` and `gpus` disagree"),
    ],
)
def test_a_broken_file_is_refused_with_the_reason(
    tmp_path: Path, edit: str, message: str
) -> None:
    path = _write(tmp_path, _broken(edit))
    with pytest.raises(CatalogError, match=message) as caught:
        load_catalog(path)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="expected a mapping"):
        load_catalog(path)
