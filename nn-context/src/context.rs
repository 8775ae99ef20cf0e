//! [`Context`]: the stored inputs of one execution context, and the carry rule.

use crate::check::{check_input, Dtype, GraphInfo, IoInfo};
use crate::{Error, Tensor};

/// What a backend fills in for one execution context.
pub trait Runner {
    /// The backend's own tensor value (an ONNX Runtime value, an OpenVINO tensor, a tract tensor).
    type Value;

    /// The graph's declared inputs and outputs.
    fn info(&self) -> &GraphInfo;

    /// Makes a value from a tensor the guest sent, already checked against `decl` (dtype, rank,
    /// fixed dimensions and data length).
    fn stage(&mut self, decl: &IoInfo, tensor: Tensor) -> Result<Self::Value, Error>;

    /// The dtype and dimensions of a value (an output handed back in as an input).
    fn describe(&self, value: &Self::Value) -> (Dtype, Vec<u32>);

    /// Runs the graph on one value per declared input (in order); returns one value per declared
    /// output (in order).
    fn run(&mut self, inputs: &[&Self::Value]) -> Result<Vec<Self::Value>, Error>;

    /// Copies a value out as a wasi-nn tensor (an output the guest reads).
    fn read(&self, value: &Self::Value) -> Result<Tensor, Error>;
}

/// One input of a `compute`: bytes from the guest, or a value the backend made earlier (an output
/// of another `compute`, passed on without copying it out).
pub enum Input<V> {
    Tensor(Tensor),
    Value(V),
}

/// An execution context: a [`Runner`] and one stored value slot per graph input.
pub struct Context<R: Runner> {
    runner: R,
    inputs: Vec<Option<R::Value>>,
}

impl<R: Runner> Context<R> {
    pub fn new(runner: R) -> Self {
        let inputs = (0..runner.info().inputs.len()).map(|_| None).collect();
        Self { runner, inputs }
    }

    pub fn runner(&self) -> &R {
        &self.runner
    }

    pub fn info(&self) -> &GraphInfo {
        self.runner.info()
    }

    /// Stores `inputs` (rule 1), then runs the graph on every stored input, keeps the carried
    /// outputs (rule 2) and returns the others with their names (rule 3).
    pub fn compute(&mut self, inputs: Vec<(String, Input<R::Value>)>) -> Result<Vec<(String, R::Value)>, Error> {
        self.store(inputs)?;
        self.run()
    }

    /// Checks every input first, then stores them all, so a bad request changes nothing.
    pub fn store(&mut self, inputs: Vec<(String, Input<R::Value>)>) -> Result<(), Error> {
        let mut checked: Vec<(usize, Input<R::Value>)> = Vec::with_capacity(inputs.len());
        for (name, input) in inputs {
            let info = self.runner.info();
            let index = info.input_index(&name)?;
            if checked.iter().any(|(i, _)| *i == index) {
                return Err(Error::invalid(format!("input `{name}` is given twice")));
            }
            let decl = &info.inputs[index];
            match &input {
                Input::Tensor(t) => check_input(decl, &t.dims, t.ty, Some(t.data.len()))?,
                Input::Value(v) => {
                    let (ty, dims) = self.runner.describe(v);
                    check_input(decl, &dims, ty, None)?;
                }
            }
            checked.push((index, input));
        }
        let mut staged = Vec::with_capacity(checked.len());
        for (index, input) in checked {
            let value = match input {
                Input::Tensor(t) => {
                    let decl = self.runner.info().inputs[index].clone();
                    self.runner.stage(&decl, t)?
                }
                Input::Value(v) => v,
            };
            staged.push((index, value));
        }
        for (index, value) in staged {
            self.inputs[index] = Some(value);
        }
        Ok(())
    }

    /// Runs the graph on the stored inputs; keeps carried outputs, returns the others.
    pub fn run(&mut self) -> Result<Vec<(String, R::Value)>, Error> {
        let info = self.runner.info();
        let values = self
            .inputs
            .iter()
            .zip(&info.inputs)
            .map(|(slot, decl)| {
                slot.as_ref().ok_or_else(|| {
                    Error::invalid(format!(
                        "missing input `{}` ({decl}): it was never given to this execution context",
                        decl.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = self.runner.run(&values)?;
        let info = self.runner.info();
        if outputs.len() != info.outputs.len() {
            return Err(Error::runtime(format!(
                "the backend returned {} outputs; the graph declares {}",
                outputs.len(),
                info.outputs.len()
            )));
        }
        let mut returned = Vec::with_capacity(outputs.len());
        let mut carried = Vec::new();
        for (index, value) in outputs.into_iter().enumerate() {
            match info.carried_into(index) {
                Some(input) => carried.push((input, value)),
                None => returned.push((info.outputs[index].name.clone(), value)),
            }
        }
        for (input, value) in carried {
            self.inputs[input] = Some(value);
        }
        Ok(returned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// A toy backend over f32 vectors: `total = sum(past) + sum(x)`, `present = past ++ x`.
    struct Toy {
        info: GraphInfo,
        runs: usize,
    }

    fn io(name: &str) -> IoInfo {
        IoInfo { name: name.into(), ty: Dtype::F32, dims: vec![-1] }
    }

    fn toy() -> Context<Toy> {
        Context::new(Toy { info: GraphInfo::new(vec![io("x"), io("past")], vec![io("total"), io("present")]), runs: 0 })
    }

    impl Runner for Toy {
        type Value = Vec<f32>;
        fn info(&self) -> &GraphInfo {
            &self.info
        }
        fn stage(&mut self, _decl: &IoInfo, t: Tensor) -> Result<Vec<f32>, Error> {
            Ok(t.data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
        }
        fn describe(&self, v: &Vec<f32>) -> (Dtype, Vec<u32>) {
            (Dtype::F32, vec![v.len() as u32])
        }
        fn run(&mut self, inputs: &[&Vec<f32>]) -> Result<Vec<Vec<f32>>, Error> {
            self.runs += 1;
            let present: Vec<f32> = inputs[1].iter().chain(inputs[0]).copied().collect();
            Ok(vec![vec![present.iter().sum()], present])
        }
        fn read(&self, v: &Vec<f32>) -> Result<Tensor, Error> {
            Ok(Tensor { dims: vec![v.len() as u32], ty: Dtype::F32, data: v.iter().flat_map(|x| x.to_le_bytes()).collect() })
        }
    }

    fn t(values: &[f32]) -> Input<Vec<f32>> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Input::Tensor(Tensor { dims: vec![values.len() as u32], ty: Dtype::F32, data })
    }

    fn named(inputs: Vec<(&str, Input<Vec<f32>>)>) -> Vec<(String, Input<Vec<f32>>)> {
        inputs.into_iter().map(|(n, i)| (n.to_string(), i)).collect()
    }

    #[test]
    fn stores_inputs_and_carries_present_into_past() {
        let mut ctx = toy();
        let out = ctx.compute(named(vec![("x", t(&[1.0, 2.0])), ("past", t(&[]))])).unwrap();
        assert_eq!(out, vec![("total".to_string(), vec![3.0])], "present is not returned");
        let out = ctx.compute(named(vec![("x", t(&[4.0]))])).unwrap();
        assert_eq!(out[0].1, [7.0], "past is the previous present");
        let out = ctx.compute(named(vec![("past", Input::Value(vec![10.0]))])).unwrap();
        assert_eq!(out[0].1, [14.0], "a backend value is taken as it is; x persisted");
    }

    #[test]
    fn a_bad_request_stores_nothing_and_never_runs() {
        let mut ctx = toy();
        let err = ctx.compute(named(vec![("x", t(&[1.0])), ("nope", t(&[]))])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        let err = ctx.compute(named(vec![("past", t(&[]))])).unwrap_err();
        assert!(err.message.contains("missing input `x`"), "x was not stored by the failed call: {err}");
        let err = ctx.compute(named(vec![("x", t(&[1.0])), ("x", t(&[1.0]))])).unwrap_err();
        assert!(err.message.contains("twice"), "{err}");
        let bad = Input::Tensor(Tensor { dims: vec![2], ty: Dtype::F32, data: vec![0; 7] });
        assert!(ctx.compute(named(vec![("x", bad)])).unwrap_err().message.contains("bytes"));
        assert_eq!(ctx.runner().runs, 0);
    }
}
