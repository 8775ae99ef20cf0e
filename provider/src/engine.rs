//! ONNX graphs in tract: parsed, optimised and planned once ([`TractGraph::load`]), then run by
//! any number of execution contexts through the shared convention ([`TractRunner`]).

use nn_context::{Dtype, Error, GraphInfo, IoInfo, Runner, Tensor};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::GenericFactoid;

/// One graph, ready to run.
pub struct TractGraph {
    plan: Arc<TypedRunnableModel>,
    info: GraphInfo,
}

fn dtype(dt: DatumType) -> Option<Dtype> {
    Some(match dt {
        DatumType::F32 => Dtype::F32,
        DatumType::F16 => Dtype::F16,
        // tract computes shapes (ONNX `Shape` and what follows it) as symbolic dimensions; ONNX
        // declares them i64, and `run` converts them (`as_i64`).
        DatumType::I64 | DatumType::TDim => Dtype::I64,
        DatumType::I32 => Dtype::I32,
        DatumType::U8 => Dtype::U8,
        _ => return None,
    })
}

/// An output as wasi-nn sees it: shape values (tract's `TDim`, in terms of the run's symbols)
/// become the i64 ONNX declares.
fn as_i64(value: TValue, symbols: &SymbolValues) -> Result<TValue, Error> {
    if value.datum_type() != DatumType::TDim {
        return Ok(value);
    }
    let dims = value.to_plain_array_view::<TDim>().map_err(|e| Error::runtime(format!("a shape output: {e}")))?;
    let ints = dims
        .iter()
        .map(|d| d.eval(symbols).to_i64().map_err(|e| Error::runtime(format!("a shape output `{d}`: {e}"))))
        .collect::<Result<Vec<i64>, _>>()?;
    tract_onnx::prelude::Tensor::from_shape(value.shape(), &ints)
        .map(TValue::from)
        .map_err(|e| Error::runtime(format!("a shape output: {e}")))
}

fn datum_type(ty: Dtype) -> Option<DatumType> {
    Some(match ty {
        Dtype::F32 => DatumType::F32,
        Dtype::F16 => DatumType::F16,
        Dtype::I64 => DatumType::I64,
        Dtype::I32 => DatumType::I32,
        Dtype::U8 => DatumType::U8,
        Dtype::F64 | Dtype::Bf16 => return None,
    })
}

fn io_info(name: &str, fact: &TypedFact, what: &str) -> Result<IoInfo, String> {
    let ty = dtype(fact.datum_type)
        .ok_or_else(|| format!("{what} `{name}` is {:?}; supported are f32, f16, i64, i32 and u8", fact.datum_type))?;
    let dims = fact.shape.iter().map(|d| d.to_i64().unwrap_or(-1)).collect();
    Ok(IoInfo { name: name.to_string(), ty, dims })
}

/// Graph data lives inside the `.onnx` file (models/README.md): a graph that points at external
/// data files is refused. (tract's default resolver would open them with `std::fs`; leaving it
/// out also keeps file-system code out of the wasm provider, see `no_fs.rs`.)
struct NoExternalData;

impl tract_onnx::data_resolver::ModelDataResolver for NoExternalData {
    fn read_bytes_from_path(&self, _: &mut Vec<u8>, p: &std::path::Path, _: usize, _: Option<usize>) -> TractResult<()> {
        tract_onnx::tract_core::internal::bail!("the graph refers to external data `{}`; this provider reads self-contained .onnx files only", p.display())
    }
}

/// Symbolic input dimensions fixed by name before analysis, e.g. `Ba=1`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pins(pub Vec<(String, i64)>);

impl Pins {
    /// Parses `NAME=SIZE,NAME=SIZE` (empty: no pins).
    pub fn parse(text: &str) -> Result<Self, String> {
        let pins = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (name, size) = p.split_once('=').ok_or_else(|| format!("`{p}` is not NAME=SIZE"))?;
                let size = size.trim().parse().map_err(|_| format!("`{p}`: the size is not a number"))?;
                Ok((name.trim().to_string(), size))
            })
            .collect::<Result<_, String>>()?;
        Ok(Pins(pins))
    }

    fn apply(&self, model: &mut InferenceModel) -> TractResult<()> {
        for input in 0..model.inputs.len() {
            let fact = model.input_fact_mut(input)?;
            let dims: Vec<_> = fact.shape.dims().cloned().collect();
            for (axis, dim) in dims.iter().enumerate() {
                let GenericFactoid::Only(TDim::Sym(symbol)) = dim else { continue };
                if let Some((_, size)) = self.0.iter().find(|(name, _)| *name == symbol.to_string()) {
                    fact.shape.set_dim(axis, TDim::Val(*size));
                }
            }
        }
        Ok(())
    }
}

/// tract's ONNX parser with every operator and [`NoExternalData`].
fn parser() -> tract_onnx::Onnx {
    let mut ops = tract_onnx::model::OnnxOpRegister::default();
    tract_onnx::ops::register_all_ops(&mut ops);
    tract_onnx::Onnx {
        op_register: ops,
        use_output_shapes: false,
        ignore_output_types: false,
        provider: Arc::new(NoExternalData),
        ignore_value_info: false,
    }
}

impl TractGraph {
    /// Parses the bytes of an `.onnx` file, optimises the graph for this machine's kernels and
    /// plans it. Symbolic dimensions (batch, tokens, cache length) stay symbolic: one plan serves
    /// every shape, resolved per run — except those named in `pins`, which become fixed sizes
    /// of the inputs that have them (for relations tract's analysis cannot prove otherwise, e.g.
    /// that a batch `B` is a multiple of another batch `Ba`; see [`Pins`]).
    pub fn load(onnx: &[u8], pins: &Pins) -> Result<Self, String> {
        let mut model = parser()
            .model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(|e| format!("tract cannot read the ONNX graph: {e:#}"))?;
        pins.apply(&mut model).map_err(|e| format!("pinning {pins:?}: {e:#}"))?;
        // Names as the ONNX file gives them; the order of inputs and outputs survives optimisation.
        let input_names: Vec<String> = model
            .input_outlets()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let output_names: Vec<String> = model
            .output_outlets()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|&o| model.outlet_label(o).map(str::to_string).unwrap_or_else(|| model.node(o.node).name.clone()))
            .collect();
        let typed = model.into_optimized().map_err(|e| format!("tract cannot optimise the graph: {e:#}"))?;
        let inputs = input_names
            .iter()
            .enumerate()
            .map(|(i, name)| io_info(name, typed.input_fact(i).map_err(|e| e.to_string())?, "input"))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = output_names
            .iter()
            .enumerate()
            .map(|(i, name)| io_info(name, typed.output_fact(i).map_err(|e| e.to_string())?, "output"))
            .collect::<Result<Vec<_>, _>>()?;
        let plan = typed.into_runnable().map_err(|e| format!("tract cannot plan the graph: {e:#}"))?;
        Ok(Self { plan, info: GraphInfo::new(inputs, outputs) })
    }

    pub fn info(&self) -> &GraphInfo {
        &self.info
    }
}

/// The dtype and dimensions of a tract value, as wasi-nn names them.
pub fn describe(value: &TValue) -> (Dtype, Vec<u32>) {
    let ty = dtype(value.datum_type()).unwrap_or(Dtype::F64);
    (ty, value.shape().iter().map(|&d| u32::try_from(d).unwrap_or(u32::MAX)).collect())
}

/// A tract value copied out as a wasi-nn tensor.
pub fn read(value: &TValue) -> Result<Tensor, Error> {
    let ty = dtype(value.datum_type())
        .ok_or_else(|| Error::unsupported(format!("an output is {:?}", value.datum_type())))?;
    let dims = value
        .shape()
        .iter()
        .map(|&d| u32::try_from(d).map_err(|_| Error::runtime(format!("output dimension {d} does not fit wasi-nn"))))
        .collect::<Result<_, _>>()?;
    Ok(Tensor { dims, ty, data: value.as_bytes().to_vec() })
}

/// The tract side of one execution context: values are tract's shared tensors, so an output
/// handed back in as an input (the encoder's cross K/V, the carried self-attention cache) is
/// never copied.
pub struct TractRunner(pub Arc<TractGraph>);

impl Runner for TractRunner {
    type Value = TValue;

    fn info(&self) -> &GraphInfo {
        &self.0.info
    }

    fn stage(&mut self, decl: &IoInfo, t: Tensor) -> Result<TValue, Error> {
        let dt = datum_type(t.ty).ok_or_else(|| Error::unsupported(nn_context::dtype_name(t.ty)))?;
        let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let tensor = if t.data.is_empty() {
            tract_onnx::prelude::Tensor::zero_dt(dt, &shape)
        } else {
            // SAFETY: every bit pattern is a valid value of these dtypes, and the length was
            // checked against the shape (`from_raw_dt` checks it again).
            unsafe { tract_onnx::prelude::Tensor::from_raw_dt(dt, &shape, &t.data) }
        };
        tensor.map(TValue::from).map_err(|e| Error::invalid(format!("input `{}`: {e}", decl.name)))
    }

    fn describe(&self, value: &TValue) -> (Dtype, Vec<u32>) {
        describe(value)
    }

    fn run(&mut self, inputs: &[&TValue]) -> Result<Vec<TValue>, Error> {
        let inputs: TVec<TValue> = inputs.iter().map(|&v| v.clone()).collect();
        let failed = |e: TractError| Error::runtime(format!("tract failed: {e:#}"));
        let mut state = self.0.plan.spawn().map_err(failed)?;
        state.set_inputs(inputs).map_err(failed)?;
        state.exec().map_err(failed)?;
        let outputs = state.outputs().map_err(failed)?;
        let symbols = &state.turn_state.resolved_symbols;
        outputs.into_iter().map(|v| as_i64(v, symbols)).collect()
    }

    fn read(&self, value: &TValue) -> Result<Tensor, Error> {
        read(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_name_equals_size() {
        assert_eq!(Pins::parse("").unwrap(), Pins::default());
        assert_eq!(Pins::parse("Ba=1, B = 4").unwrap(), Pins(vec![("Ba".into(), 1), ("B".into(), 4)]));
        assert!(Pins::parse("Ba").unwrap_err().contains("NAME=SIZE"));
        assert!(Pins::parse("Ba=one").unwrap_err().contains("not a number"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = TractGraph::load(b"this is not an onnx file", &Pins::default()).err().unwrap();
        assert!(err.contains("cannot read the ONNX graph"), "{err}");
    }
}
