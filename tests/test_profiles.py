"""Tests for sim.profiles: the shipped profile data and the lookup API."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sim.profiles import (
    InvalidProfileFile,
    Profile,
    ProfileBook,
    UnknownName,
    UnknownProfile,
    load_profiles,
)

REQUIRED_PAIRS = [
    ("llama-3.1-8b", "h100-sxm-80gb"),
    ("llama-3.1-8b", "a100-sxm-80gb"),
    ("llama-3.1-8b", "l4-24gb"),
    ("llama-3.1-8b", "a10g-24gb"),
    ("llama-3.1-8b", "jetson-agx-orin-64gb"),
    ("llama-3.1-8b", "cpu-xeon-spr-32c"),
    ("llama-3.1-70b", "h100-sxm-80gb"),
    ("llama-3.1-70b", "a100-sxm-80gb"),
]
SHIPPED = load_profiles()
ALL_PAIRS = SHIPPED.pairs()

# Published architecture of the two models (Meta's configs, via oumi's README).
ARCHITECTURE = {
    "llama-3.1-8b": {"layers": 32, "kv_heads": 8, "head_dim": 128},
    "llama-3.1-70b": {"layers": 80, "kv_heads": 8, "head_dim": 128},
}

KV_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


def _valid_profile(**changes: Any) -> dict[str, Any]:
    """Return the fields of a small valid profile, with `changes` applied."""
    fields: dict[str, Any] = {
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm-80gb",
        "devices_per_replica": 1,
        "precision": "bf16",
        "kv_cache_precision": "bf16",
        "engine": "test",
        "prefill_tokens_per_s": 1000.0,
        "decode_step_ms": {1: 10.0, 5: 30.0},
        "max_batch": 5,
        "kv_cache_tokens": 1000,
        "model_memory_gb": 16.06,
        "provenance": "derived",
        "source": "test fixture",
        "source_date": "2026-12-03",
        "note": "synthetic",
    }
    fields.update(changes)
    return fields


def _shipped_data() -> dict[str, Any]:
    """Return the shipped YAML as plain data, for building altered books."""
    path = Path(__file__).resolve().parents[1] / "sim" / "data" / "profiles.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


# --- the shipped file ------------------------------------------------------------


def test_shipped_file_loads_once() -> None:
    assert isinstance(SHIPPED, ProfileBook)
    assert load_profiles() is SHIPPED


@pytest.mark.parametrize(("model", "hardware"), REQUIRED_PAIRS)
def test_required_pair_exists(model: str, hardware: str) -> None:
    profile = SHIPPED.get(model, hardware)

    assert profile.model == model
    assert profile.hardware == hardware


def test_70b_replicas_span_several_gpus() -> None:
    for hardware in ("h100-sxm-80gb", "a100-sxm-80gb"):
        assert SHIPPED.get("llama-3.1-70b", hardware).devices_per_replica >= 2


@pytest.mark.parametrize(("model", "hardware"), ALL_PAIRS)
def test_every_profile_states_where_it_comes_from(model: str, hardware: str) -> None:
    profile = SHIPPED.get(model, hardware)

    assert profile.provenance in {"measured", "derived", "mixed"}
    assert profile.source.strip()
    assert profile.source_date.strip()
    assert profile.note.strip()
    # Anything not read straight off a benchmark must say how it was derived.
    if profile.provenance != "measured":
        assert profile.derivation is not None


def test_hardware_and_models_state_their_sources() -> None:
    for entry in [*SHIPPED.hardware.values(), *SHIPPED.models.values()]:
        assert entry.source.strip()
        assert entry.source_date.strip()


@pytest.mark.parametrize("name", sorted(ARCHITECTURE))
def test_model_architecture_matches_published_config(name: str) -> None:
    model = SHIPPED.get_model(name)

    for field, expected in ARCHITECTURE[name].items():
        assert getattr(model, field) == expected
    assert model.head_dim * model.attention_heads == model.hidden_size


@pytest.mark.parametrize("name", sorted(ARCHITECTURE))
def test_parameter_count_follows_from_architecture(name: str) -> None:
    m = SHIPPED.get_model(name)
    kv_width = m.kv_heads * m.head_dim
    per_layer = (
        2 * m.hidden_size * m.hidden_size  # query and output projections
        + 2 * m.hidden_size * kv_width  # key and value projections
        + 3 * m.hidden_size * m.intermediate_size  # gate, up and down
        + 2 * m.hidden_size  # two RMSNorm weights
    )
    embeddings = m.vocab_size * m.hidden_size * (1 if m.tied_embeddings else 2)
    parameters = embeddings + m.layers * per_layer + m.hidden_size

    assert m.parameters_b == pytest.approx(parameters / 1e9, rel=1e-3)


def test_kv_bytes_per_token() -> None:
    assert SHIPPED.get_model("llama-3.1-8b").kv_bytes_per_token("bf16") == 131_072
    assert SHIPPED.get_model("llama-3.1-70b").kv_bytes_per_token("bf16") == 327_680
    assert SHIPPED.get_model("llama-3.1-8b").kv_bytes_per_token("fp8") == 65_536


# --- derived figures re-derive -------------------------------------------------------


def _roofline(book: ProfileBook, profile: Profile) -> dict[str, Any]:
    """Recompute a profile's figures from the hardware, model and its derivation."""
    d = profile.derivation
    assert d is not None
    hw = book.hardware[profile.hardware]
    m = book.models[profile.model]
    n = profile.devices_per_replica

    params = m.parameters_b * 1e9
    weights_bytes = params * m.bytes_per_param[profile.precision]
    kv_per_token = (
        2 * m.layers * m.kv_heads * m.head_dim * KV_BYTES[profile.kv_cache_precision]
    )
    bandwidth = n * hw.memory_bandwidth_gb_per_s * 1e9 * d.bandwidth_efficiency
    flops = n * hw.peak_dense_fp16_tflops * 1e12 * d.compute_efficiency

    def step_ms(batch: int) -> float:
        memory_s = (weights_bytes + batch * d.context_tokens * kv_per_token) / bandwidth
        compute_s = 2 * params * batch / flops
        return 1000 * max(memory_s, compute_s) + d.overhead_ms

    free_bytes = (
        n * hw.memory_gb * d.usable_memory_fraction
        - weights_bytes / 1e9
        - n * d.activation_reserve_gb_per_device
    ) * 1e9
    return {
        "model_memory_gb": weights_bytes / 1e9,
        "prefill_tokens_per_s": flops / (2 * params),
        "kv_cache_tokens": math.floor(free_bytes / kv_per_token),
        "decode_step_ms": {b: step_ms(b) for b in profile.decode_step_ms},
    }


@pytest.mark.parametrize(("model", "hardware"), ALL_PAIRS)
def test_derived_figures_rederive_within_one_percent(model: str, hardware: str) -> None:
    profile = SHIPPED.get(model, hardware)
    if profile.derivation is None:
        pytest.skip("measured profile: nothing to re-derive")

    expected = _roofline(SHIPPED, profile)

    assert profile.model_memory_gb == pytest.approx(
        expected["model_memory_gb"], rel=0.01
    )
    assert profile.prefill_tokens_per_s == pytest.approx(
        expected["prefill_tokens_per_s"], rel=0.01
    )
    assert profile.kv_cache_tokens == pytest.approx(
        expected["kv_cache_tokens"], rel=0.01
    )
    for batch, step_ms in profile.decode_step_ms.items():
        assert step_ms == pytest.approx(expected["decode_step_ms"][batch], rel=0.01)


@pytest.mark.parametrize(("model", "hardware"), ALL_PAIRS)
def test_max_batch_fits_in_the_kv_cache(model: str, hardware: str) -> None:
    profile = SHIPPED.get(model, hardware)
    if profile.derivation is None:
        pytest.skip("measured profile: no assumed context length")

    assert profile.max_batch * profile.derivation.context_tokens <= (
        profile.kv_cache_tokens
    )


def test_roofline_check_catches_a_wrong_figure() -> None:
    # Guard for the test above: a 5 % error in one step time must be detected.
    profile = SHIPPED.get("llama-3.1-8b", "l4-24gb")
    expected = _roofline(SHIPPED, profile)["decode_step_ms"][16]

    assert profile.decode_step_ms[16] * 1.05 != pytest.approx(expected, rel=0.01)


# --- decode step interpolation --------------------------------------------------------


def test_decode_step_interpolates_linearly_between_points() -> None:
    profile = Profile.model_validate(_valid_profile())

    assert profile.decode_step_s(1) == pytest.approx(0.010)
    assert profile.decode_step_s(2) == pytest.approx(0.015)
    assert profile.decode_step_s(3) == pytest.approx(0.020)
    assert profile.decode_step_s(5) == pytest.approx(0.030)


def test_shipped_curve_interpolates_between_its_points() -> None:
    profile = SHIPPED.get("llama-3.1-8b", "h100-sxm-80gb")
    t128 = profile.decode_step_ms[128] / 1000
    t256 = profile.decode_step_ms[256] / 1000

    for batch in (129, 192, 255):
        weight = (batch - 128) / 128
        expected = t128 + weight * (t256 - t128)
        assert profile.decode_step_s(batch) == pytest.approx(expected, rel=1e-12)


def test_step_table_matches_decode_step_s() -> None:
    profile = SHIPPED.get("llama-3.1-8b", "a100-sxm-80gb")
    table = profile.step_table_s()

    assert len(table) == profile.max_batch + 1
    assert table[0] == 0.0
    assert all(table[b] == profile.decode_step_s(b) for b in range(1, len(table)))

    # The caller gets a copy: changing it leaves the profile alone.
    table[1] = 99.0
    assert profile.step_table_s()[1] != 99.0


@pytest.mark.parametrize("batch", [0, -1, 257])
def test_out_of_range_batch_raises(batch: int) -> None:
    profile = SHIPPED.get("llama-3.1-8b", "h100-sxm-80gb")

    with pytest.raises(ValueError, match=r"`batch` \(= -?\d+\) must be between 1"):
        profile.decode_step_s(batch)
    with pytest.raises(ValueError, match="max_batch"):
        profile.tokens_per_s_at(batch)


@pytest.mark.parametrize("batch", [2.5, True, "4"])
def test_non_integer_batch_raises(batch: Any) -> None:
    profile = SHIPPED.get("llama-3.1-8b", "h100-sxm-80gb")

    with pytest.raises(TypeError, match="`batch` must be an int"):
        profile.decode_step_s(batch)


def test_tokens_per_s_is_batch_over_step() -> None:
    profile = SHIPPED.get("llama-3.1-8b", "l4-24gb")

    assert profile.tokens_per_s_at(16) == pytest.approx(16 / 0.076865)


def test_prefill_time_is_tokens_over_rate() -> None:
    profile = SHIPPED.get("llama-3.1-8b", "a100-sxm-80gb")

    assert profile.prefill_s(0) == 0.0
    assert profile.prefill_s(11656) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"`tokens` \(= -1\) must be >= 0"):
        profile.prefill_s(-1)
    with pytest.raises(TypeError, match="`tokens` must be an int"):
        profile.prefill_s(1.5)  # type: ignore[arg-type]


# --- sanity across hardware -------------------------------------------------------


def test_8b_throughput_at_max_batch_orders_the_hardware() -> None:
    order = [
        "h100-sxm-80gb",
        "a100-sxm-80gb",
        "l4-24gb",
        "jetson-agx-orin-64gb",
        "cpu-xeon-spr-32c",
    ]
    throughput = []
    for hardware in order:
        profile = SHIPPED.get("llama-3.1-8b", hardware)
        throughput.append(profile.tokens_per_s_at(profile.max_batch))

    assert throughput == sorted(throughput, reverse=True)
    assert len(set(throughput)) == len(throughput)


def test_fits() -> None:
    assert SHIPPED.fits("llama-3.1-70b", "l4-24gb") is False
    assert SHIPPED.fits("llama-3.1-70b", "h100-sxm-80gb") is False
    assert SHIPPED.fits("llama-3.1-70b", "h100-sxm-80gb", devices=4) is True
    assert SHIPPED.fits("llama-3.1-8b", "l4-24gb") is True
    assert SHIPPED.fits("llama-3.1-70b", "a100-sxm-80gb", precision="int4") is True
    with pytest.raises(ValueError, match=r"`devices` \(= 0\) must be >= 1"):
        SHIPPED.fits("llama-3.1-8b", "l4-24gb", devices=0)


# --- lookups ----------------------------------------------------------------------


def test_unknown_pair_lists_known_pairs_and_closest() -> None:
    with pytest.raises(UnknownProfile, match="no profile for model") as info:
        SHIPPED.get("llama-3.1-70b", "l4-24gb")

    assert isinstance(info.value, LookupError)
    assert ("llama-3.1-8b", "l4-24gb") in info.value.known
    assert info.value.closest is not None
    assert info.value.closest in info.value.known


def test_misspelt_pair_suggests_the_right_one() -> None:
    with pytest.raises(UnknownProfile, match="Did you mean") as info:
        SHIPPED.get("llama-3.1-8b", "h100-sxm-80g")

    assert info.value.closest == ("llama-3.1-8b", "h100-sxm-80gb")


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(UnknownName, match="unknown hardware 'l4'") as info:
        SHIPPED.get_hardware("l4")
    assert "l4-24gb" in info.value.known

    with pytest.raises(UnknownName, match="Did you mean 'llama-3.1-8b'") as info:
        SHIPPED.fits("llama-3.1-8", "l4-24gb")
    assert info.value.closest == "llama-3.1-8b"


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"decode_step_ms": {1: 10.0, 5: 9.0}}, "must not fall as the batch grows"),
        ({"decode_step_ms": {1: 10.0, 5: 60.0}}, "throughput must not fall"),
        ({"decode_step_ms": {2: 10.0, 5: 30.0}}, "must start at batch 1"),
        ({"max_batch": 8}, r"must equal `max_batch` \(= 8\)"),
        ({"max_batch": 0}, "greater than or equal to 1"),
        ({"kv_cache_tokens": 0}, "greater than or equal to 1"),
        ({"provenance": "guessed"}, "provenance"),
        ({"source": ""}, "source"),
        ({"colour": "blue"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_profile_is_rejected(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Profile.model_validate(_valid_profile(**changes))


def test_model_that_does_not_fit_cannot_have_a_profile() -> None:
    data = _shipped_data()
    data["profiles"].append(
        _valid_profile(
            model="llama-3.1-70b",
            hardware="l4-24gb",
            model_memory_gb=141.1,
        )
    )

    with pytest.raises(ValidationError, match="the model does not fit"):
        ProfileBook.model_validate(data)


def test_profile_must_name_known_model_and_hardware() -> None:
    data = _shipped_data()
    data["profiles"].append(_valid_profile(hardware="tpu-v5e"))

    with pytest.raises(ValidationError, match="`hardware` is not defined"):
        ProfileBook.model_validate(data)


def test_duplicate_pair_is_rejected() -> None:
    data = _shipped_data()
    data["profiles"].append(data["profiles"][0])

    with pytest.raises(ValidationError, match="duplicate profile"):
        ProfileBook.model_validate(data)


def test_load_profiles_names_the_bad_file(tmp_path: Path) -> None:
    data = _shipped_data()
    data["profiles"][0]["decode_step_ms"] = {1: 10.0, 256: 5.0}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")

    with pytest.raises(InvalidProfileFile) as info:
        load_profiles(bad)

    lines = str(info.value).splitlines()
    assert lines[0].endswith("bad.yaml: 1 problem(s)")
    assert lines[1].startswith("  profiles[0]: llama-3.1-8b on h100-sxm-80gb: ")
    assert "decode step time must not fall" in lines[1]


def test_load_profiles_reads_an_explicit_path(tmp_path: Path) -> None:
    good = tmp_path / "copy.yaml"
    good.write_text(yaml.safe_dump(_shipped_data()), encoding="utf-8")

    book = load_profiles(good)

    assert book is not SHIPPED
    assert book.pairs() == SHIPPED.pairs()


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InvalidProfileFile, match="cannot read profile file"):
        load_profiles(tmp_path / "absent.yaml")
