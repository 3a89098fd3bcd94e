//! Malformed weights at run time: every fault is a `WeightError` that names what was expected
//! and what was found, never a panic: shapes whose element count overflows, truncated or
//! malformed files, tensors of another element type.

use attn_runtime::safetensors::{from_bytes, serialize_f32};
use attn_runtime::{Embedding, WeightError};

/// A safetensors file of one tensor `w`, with this header entry and these data bytes.
fn file_with(entry: &str, data: &[u8]) -> Vec<u8> {
    let header = format!("{{\"w\":{entry}}}");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn a_shape_whose_element_count_overflows_is_an_error() {
    let error = serialize_f32([("w", vec![1 << 62, 4], &[0.0f32; 4][..])]).unwrap_err();
    assert!(
        matches!(error, WeightError::Length { actual: 4, .. }),
        "{error:?}"
    );
    // Its message multiplies nothing out of range either.
    let message = error.to_string();
    assert!(message.contains("more than 2^64 values"), "{message}");
}

#[test]
fn a_stored_shape_whose_element_count_overflows_is_an_error() {
    let entry = r#"{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}"#;
    let error = from_bytes(&file_with(entry, &[0; 16])).unwrap_err();
    assert!(matches!(error, WeightError::File(_)), "{error:?}");
}

#[test]
fn a_truncated_or_malformed_file_is_an_error() {
    let whole = serialize_f32([("w", vec![2, 2], &[1.0f32; 4][..])]).unwrap();
    for cut in [0, 4, 8, 20, whole.len() - 1] {
        let error = from_bytes(&whole[..cut]).unwrap_err();
        assert!(
            matches!(error, WeightError::File(_)),
            "cut at {cut}: {error:?}"
        );
        assert!(
            error.to_string().starts_with("not a safetensors file"),
            "{error}"
        );
    }
    let error = from_bytes(&file_with("{\"dtype\":\"F32\"", b"")).unwrap_err();
    assert!(matches!(error, WeightError::File(_)), "{error:?}");
    assert!(from_bytes(&whole).is_ok());
}

#[test]
fn a_tensor_of_another_element_type_names_both_types() {
    let entry = r#"{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}"#;
    let bytes = file_with(entry, &[0; 8]);
    let file = from_bytes(&bytes).unwrap();
    let error = Embedding::<2, 2>::from_safetensors(&file, "w").unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("F16") && message.contains("f32"),
        "{message}"
    );
}
