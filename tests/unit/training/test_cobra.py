"""COBRA model: vertex sampling order, zero-initialised head, training lowers the loss,
ONNX export (metadata, parity with onnxruntime, dynamic H/W), CLI smoke run."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from arctic_assist.core import contour as C  # noqa: E402
from arctic_assist.training import cobra as CB  # noqa: E402
from arctic_assist.training import fronts as FR  # noqa: E402

torch.set_num_threads(1)


def tiny(**kw) -> CB.Cobra:
    torch.manual_seed(0)
    return CB.Cobra(width=32, head_dim=16, **kw)


def test_sampling_uses_xy_order_align_corners():
    h, w = 5, 7
    fx = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 1, h, w)
    fy = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1).expand(1, 1, h, w)
    feat = torch.cat([fx, fy], 1)
    px = np.array([[0.0, 0.0], [6.0, 0.0], [3.0, 2.0], [1.5, 3.25]])
    v = torch.tensor(C.pixel_to_normalized(px, w, h), dtype=torch.float32)[None]
    out = CB.sample_at_vertices(feat, v)[0].T.numpy()  # (V, 2): (x, y) values
    np.testing.assert_allclose(out, px, atol=1e-5)
    # outside the image: zeros
    far = torch.tensor([[[3.0, 3.0]]])
    assert CB.sample_at_vertices(feat, far).abs().max() == 0


def test_forward_shapes_and_zero_initialised_head():
    m = tiny().eval()
    x = torch.rand(2, 1, 64, 96)
    steps = m(x)
    assert len(steps) == 4 and all(s.shape == (2, 64, 2) for s in steps)
    # bias-free zero-initialised offsets: the snake stays at the image centre
    assert all(s.abs().max() == 0 for s in steps)
    # or on its start line across the middle, ordered left to right
    line = tiny(init="line").eval()(x)[-1]
    assert torch.all(line[:, 1:, 0] > line[:, :-1, 0]) and line[..., 1].abs().max() == 0


def _batch(n=4, size=64, seed=0):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n):
        s = FR.synthetic_front(rng, size)
        xs.append(s.image)
        ys.append(C.pixel_to_normalized(s.front, size, size))
    return (
        torch.tensor(np.stack(xs), dtype=torch.float32),
        torch.tensor(np.stack(ys), dtype=torch.float32),
    )


def test_a_few_training_steps_lower_the_loss():
    m = tiny(dropout=0.0).train()
    x, y = _batch()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = CB.cobra_loss(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.7 * losses[0], losses


def test_gradient_is_stopped_between_iterations():
    m = tiny(dropout=0.0).train()
    x, y = _batch(2)
    with torch.no_grad():  # move off the zero init
        m.head.offset.weight.normal_(0, 0.1)
    steps = m(x)
    # the last iteration's input vertices are detached: d step3 / d step2 == 0
    g = torch.autograd.grad(steps[-1].sum(), steps[-2], allow_unused=True, retain_graph=True)[0]
    assert g is None or g.abs().max() == 0


def test_onnx_export_parity_and_metadata(tmp_path):
    from arctic_assist.training.export import parity_check, read_spec

    m = tiny().eval()
    with torch.no_grad():
        m.head.offset.weight.normal_(0, 0.05)  # non-trivial contours
    spec = CB.model_spec(m, pixel_size_m=49.0, provenance={"method": "cobra", "steps": 0})
    path = tmp_path / "cobra.onnx"
    CB.export(m, spec, str(path), size=64)
    got = read_spec(path)
    assert got.task == "contour" and got.contour.vertices == 64
    assert got.contour.iterations == 4
    assert [o.name for o in got.outputs] == [f"contour_{i}" for i in range(4)]
    assert got.normalization.type == "none" and got.pixel_size_m == 49.0
    x = torch.rand(2, 1, 96, 128) * 1000 + 5000  # other size and scale than the example
    worst = parity_check(CB.CobraExport(m), path, x, atol=1e-4)
    assert worst < 1e-4


def test_cli_smoke_synthetic(tmp_path):
    out = tmp_path / "m.onnx"
    rc = CB.main(
        [
            "--synthetic",
            "1.0",
            "--steps",
            "3",
            "--size",
            "64",
            "--batch-size",
            "2",
            "--width",
            "32",
            "--head-dim",
            "16",
            "--out",
            str(out),
            "--threads",
            "1",
            "--log-dir",
            str(tmp_path / "runs"),
            "--progress",
            "none",
            "--checkpoint-every",
            "0",
            "--metrics-json",
            str(tmp_path / "m.json"),
        ]
    )
    assert rc == 0 and out.is_file()
    from arctic_assist.training.export import read_spec

    spec = read_spec(out)
    assert spec.provenance["method"] == "cobra" and spec.provenance["steps"] == 3
    assert json.loads((tmp_path / "m.json").read_text())["train_images"] == 0


def test_data_folder_contour_chips(tmp_path):
    """--data: a contour training-data folder (corner-origin polylines) -> samples."""
    pytest.importorskip("osgeo.gdal")
    from arctic_assist.io import training_data as D
    from arctic_assist.io.raster import write_geotiff

    rng = np.random.default_rng(0)
    chips = []
    for i in range(3):
        s = FR.synthetic_front(rng, 64)
        raw = (s.image * 10000 + 1000).astype(np.uint16)
        write_geotiff(tmp_path / f"c{i}.tif", raw, (0, 30, 0, 0, 0, -30), "", None)
        chips.append(
            {
                "image": f"c{i}.tif",
                "polyline": (s.front + 0.5).tolist(),
                "region": "g1" if i < 2 else "g2",
                "split": "train" if i < 2 else "test",
            }
        )
    manifest = {
        "format": D.FORMAT,
        "format_version": 1,
        "task": "contour",
        "crs": "EPSG:3413",
        "pixel_size_m": 30.0,
        "bands": ["gray"],
        "dtype": "uint16",
        "normalization": {"type": "none"},
        "nodata": None,
        "chips": chips,
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    samples = FR.read_training_folder(str(tmp_path))
    assert len(samples) == 3 and samples[0].pixel_size_m == 30.0
    train, test = CB._split_holdout(samples, "")
    assert len(train) == 2 and len(test) == 1
    ref = FR.synthetic_front(np.random.default_rng(0), 64).front
    np.testing.assert_allclose(samples[0].front, FR.resample_polyline(ref), atol=1e-9)

    # packed for a training environment without GDAL (retrain_model): the same samples
    from arctic_assist.training.packed import pack_training_folder

    npz = tmp_path.parent / "contour.npz"
    header = pack_training_folder(tmp_path, npz)
    assert header["kind"] == "fronts" and header["source"]["packed_from"] == str(tmp_path)
    packed = FR.read_training_folder(str(npz))
    assert [s.meta["split"] for s in packed] == [s.meta["split"] for s in samples]
    for a, b in zip(packed, samples, strict=True):
        assert (a.name, a.group, a.pixel_size_m) == (b.name, b.group, b.pixel_size_m)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.front, b.front)
    assert FR.training_data_name(str(npz)) == tmp_path.name


def test_dataset_items_and_heatmap():
    ds = CB.FrontDataset([], length=4, size=64, synthetic=1.0)
    x, v, heat = ds[0]
    assert x.shape == (1, 64, 64) and v.shape == (64, 2) and heat.shape == (2, 16, 16)
    assert float(v.abs().max()) <= 1.0
    front_px = C.normalized_to_pixel(v.numpy(), 64, 64)
    # the heat-map peaks on the front's cells
    cells = (front_px // 4).astype(int)
    assert heat[0, cells[:, 1], cells[:, 0]].min() > 0.5
    # the signed distance: ~0 on the front, positive on the glacier (left) side
    sd = heat[1].numpy()
    assert np.abs(sd[cells[:, 1], cells[:, 0]]).max() < 0.2  # within a cell (2.8 px)
    mid = front_px[32]
    d = front_px[33] - front_px[31]
    left = mid + 12 * np.array([d[1], -d[0]]) / np.linalg.norm(d)
    right = mid - 12 * np.array([d[1], -d[0]]) / np.linalg.norm(d)
    for q, sign in ((left, 1), (right, -1)):
        c = np.clip((q // 4).astype(int), 0, 15)
        assert np.sign(sd[c[1], c[0]]) == sign


def test_cli_warm_start_from_exported_model(tmp_path):
    """--base-model: a COBRA .onnx seeds the next run (architecture from its metadata)."""
    from arctic_assist.training.export import load_onnx_weights

    common = [
        "--synthetic",
        "1.0",
        "--size",
        "64",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--progress",
        "none",
        "--checkpoint-every",
        "0",
    ]
    first = tmp_path / "a.onnx"
    assert (
        CB.main(
            common
            + [
                "--steps",
                "2",
                "--width",
                "32",
                "--head-dim",
                "16",
                "--out",
                str(first),
                "--log-dir",
                str(tmp_path / "r1"),
            ]
        )
        == 0
    )
    second = tmp_path / "b.onnx"
    # default width/head-dim differ: they must come from the base model
    assert (
        CB.main(
            common
            + [
                "--steps",
                "0",
                "--base-model",
                str(first),
                "--out",
                str(second),
                "--log-dir",
                str(tmp_path / "r2"),
            ]
        )
        == 0
    )
    a, b = CB.Cobra(width=32, head_dim=16), CB.Cobra(width=32, head_dim=16)
    load_onnx_weights(a, first)
    load_onnx_weights(b, second)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), name
    with pytest.raises(ValueError, match="does not hold the weights"):
        load_onnx_weights(CB.Cobra(width=64, head_dim=16), first)


def test_one_geometry_for_training_evaluation_export_and_plugin(tmp_path):
    """Training views, the held-out evaluation, the exported metadata and the plugin
    (io/trace) all run the model on the window fitted into the same square tile
    (core.contour.fit_window). Fails when any of them uses another geometry (e.g. the
    native window, or a tile size other than the metadata's)."""
    gdal = pytest.importorskip("osgeo.gdal")
    pytest.importorskip("onnxruntime")
    from osgeo import ogr, osr

    from arctic_assist.io.trace import TraceRequest, run_tracing
    from arctic_assist.training.export import read_spec

    tile, ps = 64, 49.0
    # training: --size is the tile of the training views AND of the exported metadata
    cli = tmp_path / "cli.onnx"
    assert (
        CB.main(
            [
                "--synthetic",
                "1.0",
                "--steps",
                "1",
                "--size",
                str(tile),
                "--batch-size",
                "2",
                "--width",
                "32",
                "--head-dim",
                "16",
                "--out",
                str(cli),
                "--threads",
                "1",
                "--log-dir",
                str(tmp_path / "runs"),
                "--progress",
                "none",
                "--checkpoint-every",
                "0",
            ]
        )
        == 0
    )
    assert read_spec(cli).tile_size == tile
    assert CB.FrontDataset([], 1, size=tile, synthetic=1.0)[0][0].shape == (1, tile, tile)
    # a model with non-trivial output, exported with that tile
    m = tiny().eval()
    with torch.no_grad():
        m.head.offset.weight.normal_(0, 0.5)  # lines spanning ~10-25 px
    path = tmp_path / "m.onnx"
    CB.export(
        m,
        CB.model_spec(m, pixel_size_m=ps, provenance={"method": "cobra"}, tile_size=tile),
        str(path),
        size=tile,
    )
    # a non-square window (multiples of 16, so the plugin reads exactly this grid)
    h, w = 48, 96
    s = FR.synthetic_front(np.random.default_rng(3), 96)
    img = (s.image[:, 24:72, :] * 1000 + 200).astype(np.float32)
    # the evaluation view of a training sample is the same fit
    timg, _, mat = FR.center_fit(FR.FrontSample(img, s.front), tile)
    fit = C.fit_window(h, w, tile)
    np.testing.assert_allclose(timg, fit.image(img))
    np.testing.assert_allclose(mat, fit.matrix())
    # held-out evaluation path (torch) vs. onnx runner at the metadata tile
    ev = C.trace_window(CB.torch_runner(m), img, tile)
    run, meta_tile = CB.onnx_runner(str(path))
    assert meta_tile == tile
    # (the final line is snapped along its normals: a 1e-4 px difference between torch and
    # onnxruntime turns the normals a little, a few 1e-3 px at a 3 px move)
    np.testing.assert_allclose(C.trace_window(run, img, meta_tile)[-1], ev[-1], atol=5e-3)
    # the plugin: a GeoTIFF of the window and a box on exactly its extent
    x0, y0 = 500000.0, 8600000.0
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32620)
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "w.tif"), w, h, 1, gdal.GDT_Float32)
    gt = (x0, ps, 0.0, y0, 0.0, -ps)
    ds.SetGeoTransform(gt)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(img[0])
    ds = None
    vds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "box.gpkg"))
    lyr = vds.CreateLayer("box", srs=srs, geom_type=ogr.wkbPolygon)
    ring = [(x0, y0), (x0 + w * ps, y0), (x0 + w * ps, y0 - h * ps), (x0, y0 - h * ps), (x0, y0)]
    feat = ogr.Feature(lyr.GetLayerDefn())
    feat.SetGeometry(
        ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{a} {b}" for a, b in ring) + "))")
    )
    lyr.CreateFeature(feat)
    vds = None
    res = run_tracing(
        TraceRequest(
            str(tmp_path / "w.tif"),
            str(path),
            str(tmp_path / "box.gpkg"),
            str(tmp_path / "out.gpkg"),
        )
    )  # refined and untangled, as the evaluation does by default
    f = res.fronts[0]
    assert f.window == (w, h)
    for got, want in zip(f.iterations, ev):
        np.testing.assert_allclose(C.map_to_pixel(got, gt), want, atol=0.05)


def test_resume_continues_a_run_with_the_views_it_would_have_seen(tmp_path):
    from arctic_assist.training.checkpoint import load_checkpoint_file

    common = [
        "--synthetic",
        "1.0",
        "--size",
        "64",
        "--batch-size",
        "2",
        "--width",
        "32",
        "--head-dim",
        "16",
        "--threads",
        "1",
        "--progress",
        "none",
        "--checkpoint-every",
        "2",
        "--log-dir",
        str(tmp_path / "runs"),
        "--run-name",
        "c",
    ]
    assert CB.main(common + ["--steps", "2", "--out", str(tmp_path / "a.onnx")]) == 0
    ckpts = tmp_path / "runs" / "c" / "checkpoints"
    assert load_checkpoint_file(ckpts / "last.ckpt")["global_step"] == 2
    assert (
        CB.main(common + ["--steps", "4", "--resume", "last", "--out", str(tmp_path / "b.onnx")])
        == 0
    )
    assert load_checkpoint_file(ckpts / "last.ckpt")["global_step"] == 4
    # the resumed run's first view is the uninterrupted run's view number 2 x batch
    a = CB.FrontDataset([], length=8, size=64, synthetic=1.0)
    b = CB.FrontDataset([], length=8, size=64, synthetic=1.0, offset=4)
    assert torch.equal(a[4][0], b[0][0])


def test_orientation_free_and_spacing_losses():
    y = torch.tensor(
        C.pixel_to_normalized(FR.synthetic_front(np.random.default_rng(1), 64).front, 64, 64),
        dtype=torch.float32,
    )[None]
    pred = [y * 0.9, y.flip(1) * 0.95]
    fixed = CB.contour_losses(pred, y, vertex_weight=1.0)
    free = CB.contour_losses(pred, y, vertex_weight=1.0, orientation="free")
    free_rev = CB.contour_losses(pred, y.flip(1), vertex_weight=1.0, orientation="free")
    assert float(free["loss"]) < float(fixed["loss"])
    # orientation-free: reversing the target changes nothing
    assert float(free["loss"]) == pytest.approx(float(free_rev["loss"]), rel=1e-5)
    # the spacing penalty: 0 for the front itself, large for a zig-zag over it
    assert float(CB.spacing_penalty(y, y)) < 1e-4
    zig = y.clone()
    zig[:, 1::2] = y.flip(1)[:, 1::2]
    assert float(CB.spacing_penalty(zig, y)) > 100 * float(CB.spacing_penalty(y * 0.9, y))
