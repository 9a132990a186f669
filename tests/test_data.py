"""Collection, the HDF5 layout and its reader, resumption, the torch dataset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from foresight.batch import frames_as
from foresight.cli import main
from foresight.data.collect import parts_dir
from foresight.data.dataset import SequenceDataset
from foresight.data.hdf5 import IMAGE_KEY, DemoFile
from foresight.errors import DataError


def collect(out: Path, *extra: str) -> int:
    return main(["collect", "--out", str(out), "--image-size", "32", *extra])


def assert_same_datasets(a: Path, b: Path) -> None:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa["data"]) == sorted(fb["data"])
        for demo in fa["data"]:
            for key in (f"obs/{IMAGE_KEY}", "obs/state", "obs/object_pos", "actions", "states"):
                np.testing.assert_array_equal(fa["data"][demo][key][()], fb["data"][demo][key][()])
        for split in ("train", "valid"):
            assert list(fa["mask"][split][()]) == list(fb["mask"][split][()])


def test_layout_is_robomimic_style(tiny_h5):
    with h5py.File(tiny_h5, "r") as f:
        data = f["data"]
        assert data.attrs["total"] == 12 * 14
        assert "env_args" in data.attrs and "format_version" in data.attrs
        demo = data["demo_0"]
        assert demo.attrs["num_samples"] == 14
        assert demo[f"obs/{IMAGE_KEY}"].shape == (15, 32, 32, 3)
        assert demo[f"obs/{IMAGE_KEY}"].dtype == np.uint8
        assert demo[f"obs/{IMAGE_KEY}"].compression == "gzip"
        assert demo["obs/state"].shape == (15, 2)
        assert demo["obs/object_pos"].shape == (15, 3, 3)
        assert demo["actions"].shape == (14, 2)
        assert np.abs(demo["actions"][()]).max() <= 1.0
        assert demo["states"].dtype == np.float64
        assert len(f["mask/train"]) + len(f["mask/valid"]) == 12


def test_states_rerender_the_stored_frames(tiny_h5):
    from foresight.envs import PushEnv

    with DemoFile(tiny_h5) as f:
        env = PushEnv(f.env_args["env_kwargs"]["config"])
        states = f.read("demo_3", "states")
        frames = f.frames("demo_3")
    for t in (0, 7, 14):
        env.set_state(states[t])
        np.testing.assert_array_equal(env.sim.render(), frames[t])
    env.close()


def test_most_episodes_move_an_object(tiny_h5):
    with DemoFile(tiny_h5) as f:
        assert f.moved_fraction() >= 0.5


def test_same_seed_same_dataset_whatever_the_workers(tmp_path, tiny_h5):
    out = tmp_path / "two_workers.h5"
    assert collect(out, "--episodes", "12", "--steps", "14", "--workers", "2") == 0
    assert_same_datasets(tiny_h5, out)
    assert not parts_dir(out).exists()


def test_existing_file_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "keep.h5"
    out.write_bytes(b"precious")
    assert collect(out, "--episodes", "1", "--steps", "3") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert collect(out, "--episodes", "1", "--steps", "3", "--overwrite") == 0
    with DemoFile(out) as f:
        assert len(f.demos) == 1


def test_rerun_of_a_finished_collection_keeps_it_and_other_settings_are_refused(tmp_path, capsys):
    out = tmp_path / "done.h5"
    settings = ("--episodes", "3", "--steps", "3", "--seed", "5")
    assert collect(out, *settings) == 0
    content, mtime = out.read_bytes(), out.stat().st_mtime_ns
    capsys.readouterr()
    # The number of workers does not change the content: still the same, finished collection.
    assert collect(out, *settings, "--workers", "2") == 0
    assert "already complete" in " ".join(capsys.readouterr().err.split())  # rich wraps lines
    assert out.read_bytes() == content and out.stat().st_mtime_ns == mtime
    assert not parts_dir(out).exists()
    for other, differs in [
        (("--episodes", "4", "--steps", "3", "--seed", "5"), "episodes"),
        (("--episodes", "3", "--steps", "2", "--seed", "5"), "steps"),
        (("--episodes", "3", "--steps", "3", "--seed", "6"), "seed"),
    ]:
        assert collect(out, *other) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and differs in err[0] and "--overwrite" in err[0], err
    assert main(["collect", "--out", str(out), *settings, "--image-size", "16"]) == 2
    assert "env.image_size" in capsys.readouterr().err
    assert out.read_bytes() == content
    assert collect(out, "--episodes", "2", "--steps", "3", "--overwrite") == 0
    with DemoFile(out) as f:
        assert len(f.demos) == 2


def test_kill_minus_9_then_resume_gives_the_complete_dataset(tmp_path, tiny_h5):
    out = tmp_path / "resumed.h5"
    cmd = [
        sys.executable,
        "-m",
        "foresight.cli",
        "collect",
        "--out",
        str(out),
        "--episodes",
        "12",
        "--steps",
        "14",
        "--image-size",
        "32",
        "--seed",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = parts_dir(out)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("demo_*.npz"))) < 3:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = len(list(parts.glob("demo_*.npz")))
    assert 3 <= saved < 12, "the kill should land mid-collection"
    assert not out.exists(), "no partial dataset may be visible"
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr
    assert_same_datasets(tiny_h5, out)


def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "x.h5"
    parts = parts_dir(out)
    parts.mkdir()
    (parts / "settings.json").write_text('{"seed": 99}')
    assert collect(out, "--episodes", "2", "--steps", "3") == 2


@pytest.mark.parametrize(
    "content",
    [b"", b"not an hdf5 file at all", None],
    ids=["empty", "garbage", "foreign-hdf5"],
)
def test_bad_files_give_one_line_errors(tmp_path, capsys, content):
    path = tmp_path / "bad.h5"
    if content is None:
        with h5py.File(path, "w") as f:
            f.create_dataset("something", data=np.arange(3))
    else:
        path.write_bytes(content)
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    with pytest.raises(DataError):
        SequenceDataset(path, length=4)


def test_truncated_and_tampered_files_are_rejected(tmp_path, tiny_h5, capsys):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(tiny_h5.read_bytes()[: tiny_h5.stat().st_size // 2])
    assert main(["data", "info", str(truncated)]) == 2
    tampered = tmp_path / "tampered.h5"
    tampered.write_bytes(tiny_h5.read_bytes())
    with h5py.File(tampered, "a") as f:
        del f["data/demo_2/actions"]
        f["data/demo_2"].create_dataset("actions", data=np.zeros((14, 3), np.float32))
    assert main(["data", "info", str(tampered)]) == 2
    err = capsys.readouterr().err
    assert "demo_2/actions" in err
    assert main(["data", "info", str(tmp_path / "missing.h5")]) == 2


def test_data_info_and_preview(tiny_h5, tmp_path, capsys):
    assert main(["data", "info", str(tiny_h5)]) == 0
    out = capsys.readouterr().out
    assert "episodes" in out and "moved" in out
    png = tmp_path / "grid.png"
    assert (
        main(
            [
                "data",
                "preview",
                str(tiny_h5),
                "--out",
                str(png),
                "--episodes",
                "3",
                "--frames",
                "5",
                "--scale",
                "1",
            ]
        )
        == 0
    )
    from PIL import Image

    image = Image.open(png)
    assert image.size == (5 * 33 - 1, 3 * 33 - 1)


def test_sequence_dataset_windows(tiny_h5):
    ds = SequenceDataset(tiny_h5, length=6, split="train", image_size=16)
    with DemoFile(tiny_h5) as f:
        n_train = len(f.split("train"))
    assert len(ds) == n_train * (15 - 6 + 1)
    item = ds[0]
    assert item["frames"].shape == (6, 3, 16, 16) and item["frames"].dtype == torch.float32
    assert item["frames"].min() >= 0.0 and item["frames"].max() <= 1.0
    assert item["states"].shape == (6, 2) and item["actions"].shape == (5, 2)
    full = SequenceDataset(tiny_h5, length=6, split="train")
    assert full[3]["frames"].shape == (6, 3, 32, 32)
    # 32 -> 16 is exact 2x2 block averaging.
    torch.testing.assert_close(
        ds[3]["frames"], full[3]["frames"].reshape(6, 3, 16, 2, 16, 2).mean((3, 5))
    )


def test_uint8_frames_are_the_stored_bytes_and_round_trip_with_float(tiny_h5):
    raw = SequenceDataset(tiny_h5, length=5, split="train", frame_dtype=torch.uint8)
    item = raw[7]
    demo, start = raw.index[7]
    with DemoFile(tiny_h5) as f:
        stored = f.read(demo, f"obs/{IMAGE_KEY}", slice(start, start + 5))  # (5, H, W, 3)
    assert item["frames"].dtype == torch.uint8
    assert torch.equal(item["frames"], torch.from_numpy(stored).permute(0, 3, 1, 2))
    floats = SequenceDataset(tiny_h5, length=5, split="train")[7]["frames"]
    assert torch.equal(frames_as(floats, torch.uint8), item["frames"])
    assert torch.equal(frames_as(item["frames"], torch.float32), floats)
    # Resized frames are rounded to the nearest of the 256 levels.
    small = SequenceDataset(tiny_h5, 5, "train", image_size=16, frame_dtype=torch.uint8)[7]
    small_float = SequenceDataset(tiny_h5, 5, "train", image_size=16)[7]["frames"]
    assert (small["frames"].float() / 255 - small_float).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(DataError, match="frame_dtype"):
        SequenceDataset(tiny_h5, 5, frame_dtype=torch.float16)


@pytest.mark.parametrize(
    ("image_size", "frame_dtype"), [(None, torch.uint8), (None, torch.float32), (16, torch.float32)]
)
def test_a_split_in_memory_gives_the_file_s_windows_to_the_bit(tiny_h5, image_size, frame_dtype):
    kwargs = {"length": 5, "split": "train", "image_size": image_size, "frame_dtype": frame_dtype}
    read = SequenceDataset(tiny_h5, **kwargs)
    held = SequenceDataset(tiny_h5, **kwargs, memory_bytes=2**30)
    assert read.memory_used == 0 and read.episodes is None
    with DemoFile(tiny_h5) as f:
        assert held.memory_used == SequenceDataset.split_bytes(f, f.split("train")) > 0
    assert len(held) == len(read)
    for i in (0, 7, len(read) - 1):
        a, b = read[i], held[i]
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    # Items are copies: changing one leaves the split in memory as it was.
    held[0]["states"].fill_(9.0)
    assert torch.equal(held[0]["states"], read[0]["states"])
    # A budget below the split's size reads from the file.
    assert SequenceDataset(tiny_h5, **kwargs, memory_bytes=held.memory_used - 1).episodes is None


def test_a_damaged_frame_chunk_is_a_data_error_when_the_split_is_read_into_memory(
    tmp_path, tiny_h5
):
    path = tmp_path / "damaged.h5"
    path.write_bytes(tiny_h5.read_bytes())
    with h5py.File(path, "r") as f:
        demo = sorted(f["data"])[0]
        offset = f["data"][demo][f"obs/{IMAGE_KEY}"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 64] = b"\xff" * 64  # the gzip stream of frame 0
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="cannot be read"):
        SequenceDataset(path, length=4, split="all", memory_bytes=2**30, validate=False)


@pytest.mark.parametrize("memory_bytes", [0, 2**30])
def test_frame_skip_keeps_every_kth_frame_and_joins_the_actions_between(tiny_h5, memory_bytes):
    skip = SequenceDataset(tiny_h5, length=4, split="all", frame_skip=3, memory_bytes=memory_bytes)
    dense = SequenceDataset(tiny_h5, length=10, split="all")
    # A window of 4 frames at frame_skip 3 spans 10 stored frames: as many starts as dense's.
    assert skip.span == 10 and skip.index == dense.index
    for i in (0, 5, len(dense) - 1):
        a, b = skip[i], dense[i]
        assert torch.equal(a["frames"], b["frames"][::3])
        assert torch.equal(a["states"], b["states"][::3])
        assert a["actions"].shape == (3, 6)
        # Model action j is env actions 3j, 3j+1, 3j+2, in order.
        assert torch.equal(a["actions"], b["actions"][:9].reshape(3, 6))
    with pytest.raises(DataError, match="17 stored frames at frame_skip 2"):
        SequenceDataset(tiny_h5, length=9, frame_skip=2, split="all")


def test_actions_line_up_with_frames(tiny_h5):
    """Action t moves the pusher from state t to state t+1 (by max_step per unit)."""
    ds = SequenceDataset(tiny_h5, length=15, split="all")
    item = ds[0]
    moved = item["states"][1:] - item["states"][:-1]
    free = item["states"][1:].abs().max(-1).values < 0.2  # away from the workspace edge
    expected = item["actions"] * 0.03
    assert (moved[free] - expected[free]).abs().max() < 0.01


def test_dataloader_with_workers_opens_file_per_worker(tiny_h5):
    ds = SequenceDataset(tiny_h5, length=4, split="valid")
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(b["frames"]) for b in batches) == len(ds)
    torch.testing.assert_close(batches[0]["frames"][0], ds[0]["frames"])


def test_window_longer_than_episodes_is_a_clear_error(tiny_h5):
    with pytest.raises(DataError, match="no window of 40 frames"):
        SequenceDataset(tiny_h5, length=40)


def test_empty_train_split_is_a_clear_error_for_training_windows(tmp_path, tiny_h5):
    path = tmp_path / "no_train.h5"
    path.write_bytes(tiny_h5.read_bytes())
    with h5py.File(path, "a") as f:
        del f["mask/train"]
        f["mask"].create_dataset("train", data=np.array([], dtype="S"))
    with DemoFile(path) as f:  # still a readable file: data info reports it
        assert f.split("train") == [] and len(f.split("valid")) == 1
    with pytest.raises(DataError, match="mask/train lists no episodes"):
        SequenceDataset(path, length=4)


def test_fingerprint_follows_the_content_not_the_path(tmp_path, tiny_h5):
    copy = tmp_path / "copy.h5"
    copy.write_bytes(tiny_h5.read_bytes())
    with DemoFile(tiny_h5) as a, DemoFile(copy) as b:
        assert a.fingerprint() == b.fingerprint()
    with h5py.File(copy, "a") as f:
        f["data"].attrs["collect_config"] = '{"seed": 1}'
    with DemoFile(tiny_h5) as a, DemoFile(copy) as b:
        assert a.fingerprint()["attrs"] != b.fingerprint()["attrs"]
        assert a.fingerprint()["episodes"] == b.fingerprint()["episodes"]


def test_validation_reads_no_frames(tiny_h5, monkeypatch):
    # Thousands of episodes must open quickly: values are checked in the small float arrays
    # only (uint8 frames cannot hold a NaN).
    read = []
    original = h5py.Dataset.__getitem__

    def spy(self, index):
        read.append(self.name)
        return original(self, index)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    DemoFile(tiny_h5).close()
    assert read and not any(name.endswith(IMAGE_KEY) for name in read)
