//! The backends (ONNX Runtime, and OpenVINO in builds with the `openvino` feature) through
//! wasmtime-wasi-nn's public types (no wasm involved), on the tiny graphs of make_test_graphs.py.
//! Every test runs on every backend: they follow one convention (the crate docs).

mod common;

use std::path::Path;
use std::sync::Arc;
use wasmtime_wasi_nn::backend::{BackendError, NamedTensor};
use wasmtime_wasi_nn::wit::{Tensor, TensorType};
use wasmtime_wasi_nn::{ExecutionContext, GraphRegistry};
use whisper_host::{load_models, Models, NnStats};

/// The model `test` on every backend, loaded once per test (cheap: the graphs are tiny).
fn all_models() -> Vec<(&'static str, Models)> {
    let Some(dir) = common::require(common::test_models_dir()) else { return vec![] };
    common::backends()
        .into_iter()
        .map(|(name, backend)| {
            let models = load_models(backend, &dir, &["test".to_string()])
                .unwrap_or_else(|e| panic!("{name}: the test graphs load: {e:#}"));
            (name, models)
        })
        .collect()
}

fn context(models: &Models, name: &str) -> ExecutionContext {
    models.get(name).expect("graph exists").graph.init_execution_context().expect("context")
}

fn tensor<T: Copy>(ty: TensorType, dims: &[u32], values: &[T]) -> Tensor {
    let bytes = unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) };
    Tensor { dimensions: dims.to_vec(), ty, data: bytes.to_vec() }
}

fn f32s(values: &[f32]) -> Tensor {
    tensor(TensorType::Fp32, &[values.len() as u32], values)
}

fn compute(ctx: &mut ExecutionContext, inputs: Vec<(&str, Tensor)>) -> Result<Vec<NamedTensor>, BackendError> {
    ctx.compute_with_io(inputs.into_iter().map(|(name, tensor)| NamedTensor { name: name.into(), tensor }).collect())
}

fn output<'a>(outputs: &'a [NamedTensor], name: &str) -> &'a Tensor {
    &outputs.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no output {name}")).tensor
}

fn values<T: Copy>(t: &Tensor) -> Vec<T> {
    let n = t.data.len() / std::mem::size_of::<T>();
    (0..n).map(|i| unsafe { t.data.as_ptr().cast::<T>().add(i).read_unaligned() }).collect()
}

fn names(outputs: &[NamedTensor]) -> Vec<&str> {
    outputs.iter().map(|t| t.name.as_str()).collect()
}

#[test]
fn registers_graphs_as_model_slash_file() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        assert_eq!(models.names().collect::<Vec<_>>(), ["test/add_one", "test/cache", "test/meta", "test/mixed"]);
        let cache = &models.get("test/cache").unwrap().info;
        assert_eq!(cache.carried, vec![(0, 1)], "present is carried into past");
    }
}

#[test]
fn i64_in_i64_out() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        let mut ctx = context(&models, "test/add_one");
        // OpenVINO's CPU plugin computes i64 in i32 (documented in host/README.md): token ids
        // and positions fit; values beyond ±2³¹ are exact on ONNX Runtime only.
        let big = if backend == "onnx" { 1i64 << 40 } else { i32::MAX as i64 - 1 };
        let out = compute(&mut ctx, vec![("x", tensor(TensorType::I64, &[3], &[1i64, -5, big]))]).unwrap();
        let y = output(&out, "y");
        assert_eq!((y.ty, y.dimensions.clone()), (TensorType::I64, vec![3]));
        assert_eq!(values::<i64>(y), [2, -4, big + 1]);
    }
}

#[test]
fn every_dtype_keeps_its_own_type_and_shape() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        let mut ctx = context(&models, "test/mixed");
        let half = |x: f32| half::f16::from_f32(x);
        let out = compute(
            &mut ctx,
            vec![
                ("a", f32s(&[1.5, 2.0])),
                ("b", tensor(TensorType::Fp16, &[2], &[half(1.0), half(-3.0)])),
                ("c", tensor(TensorType::I32, &[2], &[7i32, 8])),
                ("d", tensor(TensorType::I64, &[1], &[41i64])),
            ],
        )
        .unwrap();
        assert_eq!(names(&out), ["a1", "b1", "c1", "d1", "bytes"]);
        assert_eq!(values::<f32>(output(&out, "a1")), [2.5, 3.0]);
        assert_eq!(output(&out, "b1").ty, TensorType::Fp16);
        assert_eq!(values::<half::f16>(output(&out, "b1")), [half(2.0), half(-2.0)]);
        assert_eq!((output(&out, "c1").ty, values::<i32>(output(&out, "c1"))), (TensorType::I32, vec![8, 9]));
        assert_eq!(values::<i64>(output(&out, "d1")), [42]);
        let bytes = output(&out, "bytes");
        assert_eq!((bytes.ty, bytes.dimensions.clone(), bytes.data.clone()), (TensorType::U8, vec![2], b"ok".to_vec()));
    }
}

#[test]
fn inputs_persist_until_replaced() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        let mut ctx = context(&models, "test/mixed");
        compute(
            &mut ctx,
            vec![
                ("a", f32s(&[1.0, 2.0])),
                ("b", tensor(TensorType::Fp16, &[2], &[half::f16::ONE; 2])),
                ("c", tensor(TensorType::I32, &[2], &[0i32, 0])),
                ("d", tensor(TensorType::I64, &[1], &[0i64])),
            ],
        )
        .unwrap();
        // Only `d` (with a new length); a, b, c are the stored ones.
        let out = compute(&mut ctx, vec![("d", tensor(TensorType::I64, &[3], &[1i64, 2, 3]))]).unwrap();
        assert_eq!(values::<f32>(output(&out, "a1")), [2.0, 3.0]);
        assert_eq!(values::<i64>(output(&out, "d1")), [2, 3, 4]);
        assert_eq!(output(&out, "d1").dimensions, [3]);
        // Nothing at all: everything stored.
        let out = compute(&mut ctx, vec![]).unwrap();
        assert_eq!(values::<i32>(output(&out, "c1")), [1, 1]);
        // Replace `a`.
        let out = compute(&mut ctx, vec![("a", f32s(&[10.0, 20.0]))]).unwrap();
        assert_eq!(values::<f32>(output(&out, "a1")), [11.0, 21.0]);
    }
}

#[test]
fn present_is_carried_into_past_and_not_returned() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        let mut ctx = context(&models, "test/cache");
        let x = |v: &[f32]| tensor(TensorType::Fp32, &[1, v.len() as u32], v);
        let empty_past = tensor::<f32>(TensorType::Fp32, &[1, 0], &[]);

        let out = compute(&mut ctx, vec![("x", x(&[1.0, 2.0])), ("past", empty_past.clone()), ("scale", f32s(&[1.0]))]).unwrap();
        assert_eq!(names(&out), ["total", "length"], "present stays in the host");
        assert_eq!(values::<f32>(output(&out, "total")), [3.0]);
        assert_eq!(values::<i64>(output(&out, "length")), [1, 2]);

        // Step: only x; past is the previous present.
        let out = compute(&mut ctx, vec![("x", x(&[3.0]))]).unwrap();
        assert_eq!(values::<f32>(output(&out, "total")), [6.0]);
        assert_eq!(values::<i64>(output(&out, "length")), [1, 3]);

        // Only scale: x = [3] is reused and appended again.
        let out = compute(&mut ctx, vec![("scale", f32s(&[2.0]))]).unwrap();
        assert_eq!(values::<f32>(output(&out, "total")), [18.0]);
        assert_eq!(values::<i64>(output(&out, "length")), [1, 4]);

        // Restart the sequence by sending an empty past.
        let out = compute(&mut ctx, vec![("past", empty_past), ("x", x(&[5.0]))]).unwrap();
        assert_eq!(values::<f32>(output(&out, "total")), [10.0]);
        assert_eq!(values::<i64>(output(&out, "length")), [1, 1]);

        // Another context of the same graph has its own state.
        let mut other = context(&models, "test/cache");
        let Err(err) = compute(&mut other, vec![("x", x(&[1.0]))]) else { panic!("no past yet") };
        assert!(format!("{err:?}").contains("missing input `past`"), "{err:?}");
    }
}

#[test]
fn graph_without_inputs_returns_u8() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        let mut ctx = context(&models, "test/meta");
        let out = compute(&mut ctx, vec![]).unwrap();
        assert_eq!(output(&out, "config").data, br#"{"name":"test"}"#);
    }
}

#[test]
fn bad_requests_are_errors_not_panics() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        let mut ctx = context(&models, "test/mixed");
        let ok_b = tensor(TensorType::Fp16, &[2], &[half::f16::ONE; 2]);
        let ok_c = tensor(TensorType::I32, &[2], &[1i32, 2]);
        let ok_d = tensor(TensorType::I64, &[1], &[1i64]);
        let cases: Vec<(&str, Vec<(&str, Tensor)>, &str)> = vec![
            ("fp64", vec![("a", tensor(TensorType::Fp64, &[2], &[1.0f64, 2.0]))], "Unsupported"),
            ("bf16", vec![("a", tensor(TensorType::Bf16, &[2], &[0u16, 0]))], "Unsupported"),
            ("wrong dtype", vec![("a", tensor(TensorType::I32, &[2], &[1i32, 2]))], "must be f32"),
            ("wrong rank", vec![("a", tensor(TensorType::Fp32, &[1, 2], &[1f32, 2.0]))], "shape"),
            ("fixed dim", vec![("a", f32s(&[1.0, 2.0, 3.0]))], "shape"),
            ("short data", vec![("a", Tensor { dimensions: vec![2], ty: TensorType::Fp32, data: vec![0; 7] })], "bytes"),
            ("unknown name", vec![("nope", f32s(&[1.0, 2.0]))], "unknown input `nope`"),
            ("given twice", vec![("a", f32s(&[1.0, 2.0])), ("a", f32s(&[1.0, 2.0]))], "twice"),
            ("missing input", vec![("a", f32s(&[1.0, 2.0])), ("b", ok_b.clone())], "missing input `c`"),
        ];
        for (what, inputs, expected) in cases {
            let Err(err) = compute(&mut ctx, inputs) else { panic!("{what}: accepted") };
            let text = format!("{err:?} {err}");
            assert!(text.contains(expected), "{what}: {text}");
        }
        // The context still works, and the failed calls stored nothing wrong.
        let out = compute(&mut ctx, vec![("a", f32s(&[0.0, 1.0])), ("c", ok_c), ("d", ok_d)]).unwrap();
        assert_eq!(values::<f32>(output(&out, "a1")), [1.0, 2.0]);
    }
}

#[test]
fn contexts_run_concurrently_on_one_graph() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        let models = Arc::new(models);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let models = models.clone();
                std::thread::spawn(move || {
                    let mut ctx = context(&models, "test/add_one");
                    for i in 0..200i64 {
                        let x: Vec<i64> = (0..64).map(|k| k * t + i).collect();
                        let out = compute(&mut ctx, vec![("x", tensor(TensorType::I64, &[64], &x))]).unwrap();
                        let y = values::<i64>(output(&out, "y"));
                        assert!(y.iter().zip(&x).all(|(y, x)| *y == x + 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

#[test]
fn request_registry_counts_computes_and_bytes() {
    for (backend, models) in all_models() {
        eprintln!("backend {backend}");
        let stats = NnStats::new();
        let registry = models.for_request(&stats);
        let graph = registry.get("test/add_one").unwrap();
        let mut ctx = graph.init_execution_context().unwrap();
        for _ in 0..3 {
            compute(&mut ctx, vec![("x", tensor(TensorType::I64, &[4], &[1i64, 2, 3, 4]))]).unwrap();
        }
        let _ = compute(&mut ctx, vec![("x", tensor(TensorType::Fp32, &[1], &[1f32]))]);
        let counters = stats.snapshot();
        assert_eq!(counters.len(), 1);
        let c = &counters[0];
        assert_eq!((&*c.graph, c.computes, c.failed, c.bytes_in, c.bytes_out), ("test/add_one", 4, 1, 3 * 32 + 4, 3 * 32));
        assert!(stats.summary().starts_with("test/add_one: 4× (1 failed)"), "{}", stats.summary());
        assert!(registry.get("test/nope").is_none());
    }
}

#[test]
fn missing_or_corrupt_models_stop_loading_with_the_file_name() {
    for (name, backend) in common::backends() {
        eprintln!("backend {name}");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bad-models-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("broken")).unwrap();
        std::fs::write(dir.join("broken/decoder.onnx"), b"this is not an onnx file").unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();

        let err = format!("{:#}", load_models(backend, &dir, &["broken".into()]).err().unwrap());
        assert!(err.contains("broken/decoder.onnx"), "{err}");
        let err = format!("{:#}", load_models(backend, &dir, &["base".into()]).err().unwrap());
        assert!(err.contains("model `base` not found") && err.contains("broken"), "{err}");
        let err = format!("{:#}", load_models(backend, &dir, &["empty".into()]).err().unwrap());
        assert!(err.contains("no .onnx files"), "{err}");
        let err = format!("{:#}", load_models(backend, &dir.join("nowhere"), &["base".into()]).err().unwrap());
        assert!(err.contains("does not exist"), "{err}");
        assert!(backend.load_file(&dir.join("broken/missing.onnx")).is_err());
    }
}
