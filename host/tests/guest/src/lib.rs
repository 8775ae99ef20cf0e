//! Test component for whisper-host's server tests: one route per host behaviour to check.

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use std::time::{Duration, Instant};

wit_bindgen::generate!({ path: "wit/nn.wit", world: "ml" });

use wasi::nn::{graph, inference::GraphExecutionContext, tensor::{Tensor, TensorType}};

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder().status(status).header("content-type", "text/plain").body(body.into()).build()
}

fn param(req: &Request, name: &str) -> Option<u64> {
    req.query().split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    Ok(match req.path() {
        "/hello" => text(200, "hello"),
        "/env" => text(200, std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect::<String>()),
        "/fs" => text(200, match std::fs::read_dir("/") {
            Ok(_) => "readable".to_string(),
            Err(e) => format!("error: {e}"),
        }),
        "/net" => {
            let outbound = Request::builder().method(Method::Get).uri("http://127.0.0.1:9/").build();
            let result: Result<Response, _> = spin_sdk::http::send(outbound).await;
            text(200, match result {
                Ok(r) => format!("sent: {}", r.status()),
                Err(e) => format!("error: {e}"),
            })
        }
        "/echo" => text(200, req.body().len().to_string()),
        "/trap" => panic!("the test guest traps on purpose"),
        "/spin" => loop {
            std::hint::black_box(0);
        },
        "/busy" => {
            let until = Instant::now() + Duration::from_millis(param(&req, "ms").unwrap_or(100));
            while Instant::now() < until {
                std::hint::black_box(0);
            }
            text(200, "done")
        }
        "/sleep" => {
            std::thread::sleep(Duration::from_millis(param(&req, "ms").unwrap_or(100)));
            text(200, "slept")
        }
        "/alloc" => {
            let mib = param(&req, "mib").unwrap_or(1) as usize;
            let v = vec![1u8; mib << 20];
            text(200, std::hint::black_box(v).iter().map(|&b| b as usize).sum::<usize>().to_string())
        }
        "/nn" => match add_one() {
            Ok(s) => text(200, s),
            Err(e) => text(500, e),
        },
        "/nn-cache" => match cache() {
            Ok(s) => text(200, s),
            Err(e) => text(500, e),
        },
        "/nn-bad" => text(200, bad_requests()),
        _ => text(404, "not found"),
    })
}

fn err(e: wasi::nn::errors::Error) -> String {
    format!("{:?}: {}", e.code(), e.data())
}

fn context(name: &str) -> Result<GraphExecutionContext, String> {
    graph::load_by_name(name).map_err(err)?.init_execution_context().map_err(err)
}

fn i64s(t: &Tensor) -> Vec<i64> {
    t.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn f32_tensor(dims: &[u32], values: &[f32]) -> Tensor {
    Tensor::new(dims, TensorType::Fp32, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
}

fn add_one() -> Result<String, String> {
    let ctx = context("test/add_one")?;
    let x: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let out = ctx.compute(vec![("x".into(), Tensor::new(&[3], TensorType::I64, &x))]).map_err(err)?;
    let (name, y) = out.into_iter().next().ok_or("no output")?;
    Ok(format!("{name}={:?}", i64s(&y)))
}

fn cache() -> Result<String, String> {
    let ctx = context("test/cache")?;
    let first = ctx
        .compute(vec![
            ("x".into(), f32_tensor(&[1, 2], &[1.0, 2.0])),
            ("past".into(), f32_tensor(&[1, 0], &[])),
            ("scale".into(), f32_tensor(&[1], &[1.0])),
        ])
        .map_err(err)?;
    let second = ctx.compute(vec![("x".into(), f32_tensor(&[1, 1], &[3.0]))]).map_err(err)?;
    let describe = |out: &[(String, Tensor)]| {
        out.iter().map(|(n, t)| if n == "total" { format!("{n}={:?}", f32s(t)) } else { format!("{n}={:?}", i64s(t)) }).collect::<Vec<_>>().join(" ")
    };
    Ok(format!("{} | {}", describe(&first), describe(&second)))
}

fn bad_requests() -> String {
    let mut report = Vec::new();
    match context("test/add_one") {
        Ok(ctx) => {
            let fp64 = Tensor::new(&[1], TensorType::Fp64, &1f64.to_le_bytes());
            report.push(match ctx.compute(vec![("x".into(), fp64)]) {
                Ok(_) => "fp64 accepted".to_string(),
                Err(e) => format!("fp64 {:?}", e.code()),
            });
            let short = Tensor::new(&[2], TensorType::I64, &[0u8; 3]);
            report.push(match ctx.compute(vec![("x".into(), short)]) {
                Ok(_) => "short accepted".to_string(),
                Err(e) => format!("short {:?}", e.code()),
            });
        }
        Err(e) => report.push(e),
    }
    report.push(match graph::load_by_name("test/nope") {
        Ok(_) => "nope found".into(),
        Err(e) => format!("nope {:?}", e.code()),
    });
    report.push(match graph::load(&[b"x".to_vec()], graph::GraphEncoding::Onnx, graph::ExecutionTarget::Cpu) {
        Ok(_) => "load accepted".into(),
        Err(e) => format!("load {:?}", e.code()),
    });
    report.join(", ")
}
