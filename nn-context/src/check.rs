//! Dtypes, what a graph declares, and the checks of one input against its declaration.

use crate::Error;

/// wasi-nn's `tensor-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    F16,
    F32,
    F64,
    Bf16,
    U8,
    I32,
    I64,
}

/// Bytes per element of the dtypes the convention exchanges, `None` for the rest (f64, bf16),
/// which every backend refuses.
pub fn element_size(ty: Dtype) -> Option<usize> {
    match ty {
        Dtype::U8 => Some(1),
        Dtype::F16 => Some(2),
        Dtype::F32 | Dtype::I32 => Some(4),
        Dtype::I64 => Some(8),
        Dtype::F64 | Dtype::Bf16 => None,
    }
}

/// Short lower-case dtype name for messages (`f32`, `i64`, …).
pub fn dtype_name(ty: Dtype) -> &'static str {
    match ty {
        Dtype::F16 => "f16",
        Dtype::F32 => "f32",
        Dtype::F64 => "f64",
        Dtype::Bf16 => "bf16",
        Dtype::U8 => "u8",
        Dtype::I32 => "i32",
        Dtype::I64 => "i64",
    }
}

/// Name, dtype and shape of one graph input or output, as the graph declares it.
/// A negative dimension is dynamic (any size).
#[derive(Clone, Debug, PartialEq)]
pub struct IoInfo {
    pub name: String,
    pub ty: Dtype,
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

/// What a backend found in a graph: its inputs, its outputs, and which outputs are carried over
/// as inputs (`present<S>` → `past<S>`) instead of being returned.
#[derive(Clone, Debug, Default, PartialEq)]
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

    /// The input that output `index` is carried into, if it is carried.
    pub fn carried_into(&self, output: usize) -> Option<usize> {
        self.carried.iter().find(|&&(o, _)| o == output).map(|&(_, i)| i)
    }

    pub fn input_index(&self, name: &str) -> Result<usize, Error> {
        self.inputs.iter().position(|i| i.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
            Error::invalid(format!("unknown input `{name}`; the graph's inputs are {known:?}"))
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

/// Checks a tensor against the graph's declaration of that input: dtype, rank, fixed dimensions
/// and (when `data_len` is given) the data length.
pub fn check_input(decl: &IoInfo, dims: &[u32], ty: Dtype, data_len: Option<usize>) -> Result<(), Error> {
    let Some(size) = element_size(ty) else {
        return Err(Error::unsupported(format!(
            "Unsupported tensor type: input `{}` is {}; supported are f32, f16, i64, i32 and u8",
            decl.name,
            dtype_name(ty)
        )));
    };
    if ty != decl.ty {
        return Err(Error::unsupported(format!(
            "input `{}` must be {}, got {}",
            decl.name,
            dtype_name(decl.ty),
            dtype_name(ty)
        )));
    }
    let shape_error = || Error::invalid(format!("input `{}` has shape {dims:?}; the graph expects {decl}", decl.name));
    if dims.len() != decl.dims.len() {
        return Err(shape_error());
    }
    if decl.dims.iter().zip(dims).any(|(&want, &got)| want >= 0 && want != i64::from(got)) {
        return Err(shape_error());
    }
    let expected = dims
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(|| Error::invalid(format!("input `{}`: shape {dims:?} is too large", decl.name)))?;
    match data_len {
        Some(len) if len != expected => Err(Error::invalid(format!(
            "input `{}`: shape {dims:?} of {} needs {expected} bytes, got {len}",
            decl.name,
            dtype_name(ty)
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(name: &str, ty: Dtype, dims: &[i64]) -> IoInfo {
        IoInfo { name: name.into(), ty, dims: dims.to_vec() }
    }

    #[test]
    fn pairs_present_with_past_by_suffix() {
        let inputs = vec![io("tokens", Dtype::I64, &[-1]), io("past", Dtype::F32, &[-1]), io("past.1", Dtype::F32, &[-1])];
        let outputs = vec![
            io("logits", Dtype::F32, &[-1]),
            io("present.1", Dtype::F32, &[-1]),
            io("present", Dtype::F32, &[-1]),
            io("present.2", Dtype::F32, &[-1]),
        ];
        let info = GraphInfo::new(inputs, outputs);
        assert_eq!(info.carried, vec![(1, 2), (2, 1)]);
        assert_eq!((info.carried_into(1), info.carried_into(3)), (Some(2), None));
    }

    #[test]
    fn checks_dtype_rank_dims_and_length() {
        let decl = io("x", Dtype::F32, &[-1, 3]);
        assert!(check_input(&decl, &[2, 3], Dtype::F32, Some(24)).is_ok());
        assert_eq!(check_input(&decl, &[2, 3], Dtype::F64, Some(48)).unwrap_err().kind, crate::ErrorKind::UnsupportedType);
        assert_eq!(check_input(&decl, &[2, 3], Dtype::I32, Some(24)).unwrap_err().kind, crate::ErrorKind::UnsupportedType);
        assert!(check_input(&decl, &[6], Dtype::F32, Some(24)).is_err());
        assert!(check_input(&decl, &[2, 4], Dtype::F32, Some(32)).is_err());
        assert!(check_input(&decl, &[2, 3], Dtype::F32, Some(20)).is_err());
        assert!(check_input(&decl, &[u32::MAX, u32::MAX, 3][1..], Dtype::F32, Some(20)).is_err());
        assert!(check_input(&decl, &[0, 3], Dtype::F32, Some(0)).is_ok());
        assert!(check_input(&decl, &[2, 3], Dtype::F32, None).is_ok(), "a backend value has no byte length to check");
    }
}
