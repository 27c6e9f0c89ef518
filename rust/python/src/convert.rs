//! Python objects to JSON, and results to Python objects, once per call (never per
//! request on a tokio thread).

use distilabel_rs_core::http::{Completion, TokenLogprob};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// A JSON value from plain Python data (dict with str keys, list, tuple, str, int, float,
/// bool, None). `path` names where a bad value was found, for the error message.
pub fn to_json(value: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Value::String(text.to_str()?.to_owned()));
    }
    if value.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(number) = value.extract::<i64>() {
            return Ok(Value::Number(number.into()));
        }
        return value
            .extract::<u64>()
            .map(|n| Value::Number(n.into()))
            .map_err(|_| PyValueError::new_err(format!("{path}: integer out of range")));
    }
    if let Ok(number) = value.cast::<PyFloat>() {
        return Number::from_f64(number.value())
            .map(Value::Number)
            .ok_or_else(|| {
                PyValueError::new_err(format!("{path}: {} is not valid JSON", number.value()))
            });
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut object = Map::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            let key = key.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{path}: keys must be strings, not {}",
                    type_name(&key)
                ))
            })?;
            let key = key.to_str()?.to_owned();
            let item = to_json(&item, &format!("{path}.{key}"))?;
            object.insert(key, item);
        }
        return Ok(Value::Object(object));
    }
    if let Ok(list) = value.cast::<PyList>() {
        return sequence(list.iter(), list.len(), path);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return sequence(tuple.iter(), tuple.len(), path);
    }
    Err(PyTypeError::new_err(format!(
        "{path}: a value of type `{}` cannot be sent as JSON; use dicts, lists, strings, numbers, booleans or None",
        type_name(value)
    )))
}

fn sequence<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    length: usize,
    path: &str,
) -> PyResult<Value> {
    let mut values = Vec::with_capacity(length);
    for (index, item) in items.enumerate() {
        values.push(to_json(&item, &format!("{path}[{index}]"))?);
    }
    Ok(Value::Array(values))
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |name| name.to_string())
}

/// distilabel's `prepare_output`: token counts always (one value per request), logprobs
/// only when there are some.
pub fn generate_output<'py>(
    py: Python<'py>,
    completion: &Completion,
) -> PyResult<Bound<'py, PyDict>> {
    let output = PyDict::new(py);
    output.set_item(pyo3::intern!(py, "generations"), &completion.generations)?;
    let statistics = PyDict::new(py);
    statistics.set_item(pyo3::intern!(py, "input_tokens"), [completion.input_tokens])?;
    statistics.set_item(
        pyo3::intern!(py, "output_tokens"),
        [completion.output_tokens],
    )?;
    output.set_item(pyo3::intern!(py, "statistics"), statistics)?;
    if !completion.logprobs.is_empty() {
        let choices = PyList::empty(py);
        for positions in &completion.logprobs {
            let rows = PyList::empty(py);
            for position in positions {
                match position {
                    Some(alternatives) => rows.append(logprob_list(py, alternatives)?)?,
                    None => rows.append(py.None())?,
                }
            }
            choices.append(rows)?;
        }
        output.set_item(pyo3::intern!(py, "logprobs"), choices)?;
    }
    Ok(output)
}

fn logprob_list<'py>(
    py: Python<'py>,
    alternatives: &[TokenLogprob],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for alternative in alternatives {
        let entry = PyDict::new(py);
        entry.set_item(pyo3::intern!(py, "token"), &alternative.token)?;
        entry.set_item(pyo3::intern!(py, "logprob"), alternative.logprob)?;
        list.append(entry)?;
    }
    Ok(list)
}
