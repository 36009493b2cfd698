//! Reads the float initializers (the trained weights) out of an ONNX model file.
//!
//! ONNX files are protocol buffers. We need four fields of three messages, so this is a
//! small hand-written reader of the protobuf wire format rather than generated code: the
//! generators need `protoc` and the full ONNX schema at build time, for no gain here.

use crate::ModelError;

/// One float tensor from the graph's initializer list, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

// Field numbers from onnx.proto.
const MODEL_GRAPH: u64 = 7;
const GRAPH_INITIALIZER: u64 = 5;
const TENSOR_DIMS: u64 = 1;
const TENSOR_DATA_TYPE: u64 = 2;
const TENSOR_FLOAT_DATA: u64 = 4;
const TENSOR_NAME: u64 = 8;
const TENSOR_RAW_DATA: u64 = 9;
const TENSOR_DATA_LOCATION: u64 = 14;
const DATA_TYPE_FLOAT: u64 = 1;
const DATA_LOCATION_EXTERNAL: u64 = 1;

/// Every float initializer of the model's main graph. Tensors of other types (the int64
/// shape constants the exporter leaves behind) are skipped: they are not weights.
pub fn float_initializers(model: &[u8]) -> Result<Vec<Initializer>, ModelError> {
    let mut graph = None;
    for field in Fields::new(model) {
        let field = field?;
        if let (MODEL_GRAPH, Value::Bytes(bytes)) = (field.number, field.value) {
            graph = Some(bytes);
        }
    }
    let graph = graph.ok_or_else(|| ModelError::Onnx("the model has no graph".into()))?;
    let mut tensors = Vec::new();
    for field in Fields::new(graph) {
        let field = field?;
        if let (GRAPH_INITIALIZER, Value::Bytes(bytes)) = (field.number, field.value)
            && let Some(tensor) = tensor(bytes)?
        {
            tensors.push(tensor);
        }
    }
    Ok(tensors)
}

fn tensor(bytes: &[u8]) -> Result<Option<Initializer>, ModelError> {
    let mut name = String::new();
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut raw: Option<&[u8]> = None;
    let mut floats = Vec::new();
    for field in Fields::new(bytes) {
        let field = field?;
        match (field.number, field.value) {
            (TENSOR_NAME, Value::Bytes(b)) => {
                name = String::from_utf8(b.to_vec())
                    .map_err(|_| ModelError::Onnx("tensor name is not UTF-8".into()))?;
            }
            (TENSOR_DIMS, Value::Varint(d)) => dims.push(d as usize),
            (TENSOR_DIMS, Value::Bytes(packed)) => {
                for d in Fields::packed_varints(packed) {
                    dims.push(d? as usize);
                }
            }
            (TENSOR_DATA_TYPE, Value::Varint(t)) => data_type = t,
            (TENSOR_RAW_DATA, Value::Bytes(b)) => raw = Some(b),
            (TENSOR_FLOAT_DATA, Value::Fixed32(bits)) => floats.push(f32::from_bits(bits)),
            (TENSOR_FLOAT_DATA, Value::Bytes(packed)) => floats.extend(le_floats(packed)?),
            (TENSOR_DATA_LOCATION, Value::Varint(DATA_LOCATION_EXTERNAL)) => {
                return Err(ModelError::Onnx(format!(
                    "tensor {name:?} keeps its data in an external file"
                )));
            }
            _ => {}
        }
    }
    if data_type != DATA_TYPE_FLOAT {
        return Ok(None);
    }
    let data = match raw {
        Some(raw) => le_floats(raw)?,
        None => floats,
    };
    let expected: usize = dims.iter().product();
    if data.len() != expected {
        return Err(ModelError::Onnx(format!(
            "tensor {name:?} has shape {dims:?} ({expected} values) but carries {} values",
            data.len()
        )));
    }
    Ok(Some(Initializer { name, dims, data }))
}

fn le_floats(bytes: &[u8]) -> Result<Vec<f32>, ModelError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(ModelError::Onnx(
            "float data is not a whole number of 4-byte values".into(),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Field<'a> {
    number: u64,
    value: Value<'a>,
}

/// An iterator over the top-level fields of one protobuf message.
struct Fields<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, failed: false }
    }

    fn packed_varints(buf: &'a [u8]) -> impl Iterator<Item = Result<u64, ModelError>> + 'a {
        let mut rest = buf;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            Some(varint(&mut rest))
        })
    }

    fn next_field(&mut self) -> Result<Field<'a>, ModelError> {
        let key = varint(&mut self.buf)?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut self.buf)?),
            1 => {
                take(&mut self.buf, 8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(varint(&mut self.buf)?).map_err(|_| truncated())?;
                Value::Bytes(take(&mut self.buf, len)?)
            }
            5 => {
                let b = take(&mut self.buf, 4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => {
                return Err(ModelError::Onnx(format!(
                    "unsupported protobuf wire type {other}"
                )));
            }
        };
        Ok(Field { number, value })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, ModelError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let field = self.next_field();
        self.failed = field.is_err();
        Some(field)
    }
}

fn truncated() -> ModelError {
    ModelError::Onnx("protobuf message is truncated".into())
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], ModelError> {
    if buf.len() < n {
        return Err(truncated());
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn varint(buf: &mut &[u8]) -> Result<u64, ModelError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or_else(truncated)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ModelError::Onnx(
        "protobuf varint is longer than 10 bytes".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(number: u64, wire: u64) -> Vec<u8> {
        encode_varint((number << 3) | wire)
    }

    fn encode_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = key(number, 2);
        out.extend(encode_varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }

    fn varint_field(number: u64, v: u64) -> Vec<u8> {
        let mut out = key(number, 0);
        out.extend(encode_varint(v));
        out
    }

    fn model_with(tensors: &[Vec<u8>]) -> Vec<u8> {
        let graph: Vec<u8> = tensors
            .iter()
            .flat_map(|t| bytes_field(GRAPH_INITIALIZER, t))
            .collect();
        let mut model = varint_field(1, 8); // ir_version, ignored
        model.extend(bytes_field(MODEL_GRAPH, &graph));
        model
    }

    #[test]
    fn raw_and_packed_float_tensors_are_read_and_int_tensors_skipped() {
        let raw: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let mut weight = bytes_field(TENSOR_NAME, b"layer.weight");
        weight.extend(bytes_field(TENSOR_DIMS, &[2, 2]));
        weight.extend(varint_field(TENSOR_DATA_TYPE, DATA_TYPE_FLOAT));
        weight.extend(bytes_field(TENSOR_RAW_DATA, &raw));
        let mut bias = bytes_field(TENSOR_NAME, b"layer.bias");
        bias.extend(varint_field(TENSOR_DIMS, 1));
        bias.extend(varint_field(TENSOR_DATA_TYPE, DATA_TYPE_FLOAT));
        bias.extend(bytes_field(TENSOR_FLOAT_DATA, &3.0f32.to_le_bytes()));
        let mut shape = bytes_field(TENSOR_NAME, b"shape");
        shape.extend(varint_field(TENSOR_DATA_TYPE, 7));

        let tensors = float_initializers(&model_with(&[weight, bias, shape])).unwrap();

        assert_eq!(
            tensors,
            vec![
                Initializer {
                    name: "layer.weight".into(),
                    dims: vec![2, 2],
                    data: vec![1.5, -2.0, 0.25, 8.0]
                },
                Initializer {
                    name: "layer.bias".into(),
                    dims: vec![1],
                    data: vec![3.0]
                },
            ]
        );
    }

    #[test]
    fn a_tensor_whose_data_does_not_match_its_shape_is_rejected() {
        let mut weight = bytes_field(TENSOR_NAME, b"w");
        weight.extend(bytes_field(TENSOR_DIMS, &[3]));
        weight.extend(varint_field(TENSOR_DATA_TYPE, DATA_TYPE_FLOAT));
        weight.extend(bytes_field(TENSOR_RAW_DATA, &1.0f32.to_le_bytes()));
        let err = float_initializers(&model_with(&[weight])).unwrap_err();
        assert!(err.to_string().contains("carries 1 values"), "{err}");
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_panic() {
        let model = model_with(&[bytes_field(TENSOR_NAME, b"w")]);
        for cut in 1..model.len() {
            let _ = float_initializers(&model[..cut]);
        }
        assert!(float_initializers(&model[..model.len() - 1]).is_err());
    }
}
