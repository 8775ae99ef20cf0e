"""Tiny ONNX graphs for the host's backend and server tests (no Whisper model needed).

Usage: python make_test_graphs.py OUT_DIR
Writes OUT_DIR/test/{add_one,mixed,cache,meta}.onnx, i.e. the model "test" in the models-dir layout,
so the files load both through the backend directly and as `--models OUT_DIR --model test`.

- add_one: x i64[N] -> y = x + 1 (i64[N])
- mixed:   a f32[2], b f16[2], c i32[2], d i64[-1] -> a1 = a + 1, b1 = b + 1, c1 = c + 1, d1 = d + 1,
           and u8 `bytes` = b"ok" (a constant)
- cache:   x f32[1, T], past f32[1, P], scale f32[1]
           -> present = concat(past, x) f32[1, P+T]   (carried: never returned to the guest)
              total = sum(present) * scale  f32[1]
              length = shape(present)       i64[2]
- meta:    no inputs -> config u8[N] (UTF-8 JSON), like models/build/<model>/meta.onnx
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(graph, path):
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="whisper-host-tests")
    model.ir_version = 8  # readable by ONNX Runtime 1.22 and OpenVINO
    onnx.checker.check_model(model)
    onnx.save(model, path)


def const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name + "_value"))


def add_one():
    return helper.make_graph(
        [const("one", np.array(1, dtype=np.int64)), helper.make_node("Add", ["x", "one"], ["y"])],
        "add_one",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N"])],
    )


def mixed():
    nodes = [
        const("one_f32", np.array(1, dtype=np.float32)),
        const("one_f16", np.array(1, dtype=np.float16)),
        const("one_i32", np.array(1, dtype=np.int32)),
        const("one_i64", np.array(1, dtype=np.int64)),
        helper.make_node("Add", ["a", "one_f32"], ["a1"]),
        helper.make_node("Add", ["b", "one_f16"], ["b1"]),
        helper.make_node("Add", ["c", "one_i32"], ["c1"]),
        helper.make_node("Add", ["d", "one_i64"], ["d1"]),
        const("bytes", np.frombuffer(b"ok", dtype=np.uint8)),
    ]
    return helper.make_graph(
        nodes,
        "mixed",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT16, [2]),
            helper.make_tensor_value_info("c", TensorProto.INT32, [2]),
            helper.make_tensor_value_info("d", TensorProto.INT64, ["D"]),
        ],
        [
            helper.make_tensor_value_info("a1", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("b1", TensorProto.FLOAT16, [2]),
            helper.make_tensor_value_info("c1", TensorProto.INT32, [2]),
            helper.make_tensor_value_info("d1", TensorProto.INT64, ["D"]),
            helper.make_tensor_value_info("bytes", TensorProto.UINT8, [2]),
        ],
    )


def cache():
    nodes = [
        helper.make_node("Concat", ["past", "x"], ["present"], axis=1),
        helper.make_node("ReduceSum", ["present"], ["sum"], keepdims=0),
        helper.make_node("Mul", ["sum", "scale"], ["total"]),
        helper.make_node("Shape", ["present"], ["length"]),
    ]
    return helper.make_graph(
        nodes,
        "cache",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T"]),
            helper.make_tensor_value_info("past", TensorProto.FLOAT, [1, "P"]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("present", TensorProto.FLOAT, [1, "PT"]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("length", TensorProto.INT64, [2]),
        ],
    )


def meta():
    config = np.frombuffer(b'{"name":"test"}', dtype=np.uint8)
    return helper.make_graph(
        [const("config", config)],
        "meta",
        [],
        [helper.make_tensor_value_info("config", TensorProto.UINT8, [len(config)])],
    )


def main():
    out = os.path.join(sys.argv[1], "test")
    os.makedirs(out, exist_ok=True)
    for name, make in [("add_one", add_one), ("mixed", mixed), ("cache", cache), ("meta", meta)]:
        save(make(), os.path.join(out, name + ".onnx"))


if __name__ == "__main__":
    main()
