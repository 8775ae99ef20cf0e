//! Tensor checks shared by the backends: element sizes, shape validation and the
//! `past<S>`/`present<S>` pairing of the execution-context convention (see the crate docs).

use wasmtime_wasi_nn::backend::BackendError;
use wasmtime_wasi_nn::wit::TensorType;

// wasi-nn tensor data is little-endian; both backends hand the bytes to the native library as is.
#[cfg(target_endian = "big")]
compile_error!("whisper-host passes wasi-nn tensor bytes through unchanged and needs a little-endian target");

/// Bytes per element of the dtypes this host exchanges with guests, `None` for the rest
/// (`FP64`, `BF16`), which every backend refuses.
pub fn element_size(ty: TensorType) -> Option<usize> {
    match ty {
        TensorType::U8 => Some(1),
        TensorType::Fp16 => Some(2),
        TensorType::Fp32 | TensorType::I32 => Some(4),
        TensorType::I64 => Some(8),
        TensorType::Fp64 | TensorType::Bf16 => None,
    }
}

/// Short lower-case dtype name for messages (`f32`, `i64`, …).
pub fn dtype_name(ty: TensorType) -> &'static str {
    match ty {
        TensorType::Fp16 => "f16",
        TensorType::Fp32 => "f32",
        TensorType::Fp64 => "f64",
        TensorType::Bf16 => "bf16",
        TensorType::U8 => "u8",
        TensorType::I32 => "i32",
        TensorType::I64 => "i64",
    }
}

/// Name, dtype and shape of one graph input or output, as the graph declares it.
/// A negative dimension is dynamic (any size).
#[derive(Clone, Debug, PartialEq)]
pub struct IoInfo {
    pub name: String,
    pub ty: TensorType,
    pub dims: Vec<i64>,
}

impl std::fmt::Display for IoInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}[", self.name, dtype_name(self.ty))?;
        for (i, d) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if *d < 0 {
                f.write_str("?")?;
            } else {
                write!(f, "{d}")?;
            }
        }
        f.write_str("]")
    }
}

/// What a backend found in a graph file: its inputs, its outputs, and which outputs it carries
/// over as inputs (`present<S>` → `past<S>`) instead of returning them.
#[derive(Clone, Debug, Default)]
pub struct GraphInfo {
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
    /// `(output index, input index)` for every `present<S>` output with a `past<S>` input.
    pub carried: Vec<(usize, usize)>,
}

impl GraphInfo {
    pub fn new(inputs: Vec<IoInfo>, outputs: Vec<IoInfo>) -> Self {
        let carried = carried_pairs(&inputs, &outputs);
        Self { inputs, outputs, carried }
    }

    /// `true` if output `index` is kept as state rather than returned.
    pub fn is_carried(&self, output: usize) -> bool {
        self.carried.iter().any(|&(o, _)| o == output)
    }

    pub fn input_index(&self, name: &str) -> Result<usize, BackendError> {
        self.inputs.iter().position(|i| i.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
            backend_error(format!("unknown input `{name}`; the graph's inputs are {known:?}"))
        })
    }
}

/// Pairs every output `present<S>` with the input `past<S>` (same suffix `S`, possibly empty).
pub fn carried_pairs(inputs: &[IoInfo], outputs: &[IoInfo]) -> Vec<(usize, usize)> {
    outputs
        .iter()
        .enumerate()
        .filter_map(|(o, out)| {
            let suffix = out.name.strip_prefix("present")?;
            let i = inputs.iter().position(|i| i.name.strip_prefix("past") == Some(suffix))?;
            Some((o, i))
        })
        .collect()
}

/// Checks a tensor the guest sent against the graph's declaration of that input: dtype, rank,
/// fixed dimensions and the data length. Returns the dimensions as ONNX wants them (`i64`).
pub fn check_input(decl: &IoInfo, dims: &[u32], ty: TensorType, data_len: usize) -> Result<Vec<i64>, BackendError> {
    let Some(size) = element_size(ty) else {
        return Err(BackendError::UnsupportedTensorType(format!(
            "input `{}` is {}; this host supports f32, f16, i64, i32 and u8 tensors",
            decl.name,
            dtype_name(ty)
        )));
    };
    if ty != decl.ty {
        return Err(BackendError::UnsupportedTensorType(format!(
            "input `{}` must be {}, got {}",
            decl.name,
            dtype_name(decl.ty),
            dtype_name(ty)
        )));
    }
    let shape_error = || backend_error(format!("input `{}` has shape {dims:?}; the graph expects {decl}", decl.name));
    if dims.len() != decl.dims.len() {
        return Err(shape_error());
    }
    if decl.dims.iter().zip(dims).any(|(&want, &got)| want >= 0 && want != i64::from(got)) {
        return Err(shape_error());
    }
    let expected = dims
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(|| backend_error(format!("input `{}`: shape {dims:?} is too large", decl.name)))?;
    if expected != data_len {
        return Err(backend_error(format!(
            "input `{}`: shape {dims:?} of {} needs {expected} bytes, got {data_len}",
            decl.name,
            dtype_name(ty)
        )));
    }
    Ok(dims.iter().map(|&d| i64::from(d)).collect())
}

/// A [`BackendError`] carrying a message (shown in the host log; wasmtime-wasi-nn reports it to
/// the guest as `runtime-error`).
pub fn backend_error(message: impl Into<String>) -> BackendError {
    BackendError::BackendAccess(wasmtime::Error::msg(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(name: &str, ty: TensorType, dims: &[i64]) -> IoInfo {
        IoInfo { name: name.into(), ty, dims: dims.to_vec() }
    }

    #[test]
    fn pairs_present_with_past_by_suffix() {
        let inputs = vec![io("tokens", TensorType::I64, &[-1]), io("past", TensorType::Fp32, &[-1]), io("past.1", TensorType::Fp32, &[-1])];
        let outputs = vec![io("logits", TensorType::Fp32, &[-1]), io("present.1", TensorType::Fp32, &[-1]), io("present", TensorType::Fp32, &[-1]), io("present.2", TensorType::Fp32, &[-1])];
        assert_eq!(carried_pairs(&inputs, &outputs), vec![(1, 2), (2, 1)]);
    }

    #[test]
    fn checks_dtype_rank_dims_and_length() {
        let decl = io("x", TensorType::Fp32, &[-1, 3]);
        assert_eq!(check_input(&decl, &[2, 3], TensorType::Fp32, 24).unwrap(), vec![2, 3]);
        assert!(check_input(&decl, &[2, 3], TensorType::Fp64, 48).is_err());
        assert!(check_input(&decl, &[2, 3], TensorType::I32, 24).is_err());
        assert!(check_input(&decl, &[6], TensorType::Fp32, 24).is_err());
        assert!(check_input(&decl, &[2, 4], TensorType::Fp32, 32).is_err());
        assert!(check_input(&decl, &[2, 3], TensorType::Fp32, 20).is_err());
        assert!(check_input(&decl, &[u32::MAX, 3], TensorType::Fp32, 20).is_err());
        assert_eq!(check_input(&decl, &[0, 3], TensorType::Fp32, 0).unwrap(), vec![0, 3]);
    }
}
