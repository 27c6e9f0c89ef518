//! Python objects to JSON, and results to Python objects, once per call (never per
//! request on a tokio thread).

use distilabel_rs_core::http::{Completion, TokenLogprob};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};

/// A JSON value from plain Python data (dict with str keys, list, tuple, str, int, float,
/// bool, None). `path` names where a bad value was found, for the error message.
pub fn to_json(value: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    json_of(value).map_err(|bad| bad.into_pyerr(path))
}

/// [`to_json`] of the body of request `index` (named `request {index}` in errors).
pub fn request_json(body: &Bound<'_, PyAny>, index: usize) -> PyResult<Value> {
    json_of(body).map_err(|bad| bad.into_pyerr(&format!("request {index}")))
}

/// The JSON bytes of plain Python data, written straight from the Python objects (no
/// intermediate [`Value`]: building one cost more than the writing). The same bytes as
/// `serde_json::to_vec(&to_json(value))`; on a value that cannot be sent, `None`, and
/// [`to_json`] gives the error with its place.
pub fn json_bytes(value: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    serde_json::to_writer(&mut out, &Plain(value)).ok()?;
    Some(out)
}

/// The bodies of requests that differ only in one member, the input (and, with `seeds`, a
/// seed member): `template` (a dict of every other member) is written once, and each body
/// is it with `"key": input` (and `"seed_key": seed`) appended. `repeat` bodies per input,
/// `seeds` one per body in that order. `None` when a value cannot be written directly (the
/// caller then builds the requests one by one, which names the bad value).
pub fn templated_bodies(
    template: &Bound<'_, PyAny>,
    key: &str,
    inputs: &Bound<'_, PyList>,
    repeat: usize,
    seeds: Option<(&str, &[u64])>,
) -> Option<Vec<Vec<u8>>> {
    let template = json_bytes(template)?;
    // `{...}` without its closing brace, and the separator before the next member.
    let open = template
        .strip_suffix(b"}")
        .filter(|open| open.starts_with(b"{"))?;
    let separator: &[u8] = if open.len() > 1 { b"," } else { b"" };
    let mut key_json = serde_json::to_vec(key).ok()?;
    key_json.push(b':');
    let seed = match seeds {
        Some((seed_key, seeds)) if seeds.len() == inputs.len() * repeat => {
            let mut seed_json = b",".to_vec();
            seed_json.extend(serde_json::to_vec(seed_key).ok()?);
            seed_json.push(b':');
            Some((seed_json, seeds))
        }
        Some(_) => return None,
        None => None,
    };
    let mut bodies = Vec::with_capacity(inputs.len() * repeat);
    let mut head = Vec::with_capacity(open.len() + 256);
    for input in inputs.iter() {
        head.clear();
        head.extend_from_slice(open);
        head.extend_from_slice(separator);
        head.extend_from_slice(&key_json);
        serde_json::to_writer(&mut head, &Plain(&input)).ok()?;
        for _ in 0..repeat {
            let mut body = Vec::with_capacity(head.len() + 32);
            body.extend_from_slice(&head);
            if let Some((seed_json, seeds)) = &seed {
                body.extend_from_slice(seed_json);
                serde_json::to_writer(&mut body, seeds.get(bodies.len())?).ok()?;
            }
            body.push(b'}');
            bodies.push(body);
        }
    }
    Some(bodies)
}

/// Python data seen as `Serialize`, with [`json_of`]'s rules.
struct Plain<'a, 'py>(&'a Bound<'py, PyAny>);

impl Serialize for Plain<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0;
        let unsendable = || S::Error::custom("cannot be sent as JSON");
        if value.is_none() {
            return serializer.serialize_unit();
        }
        if let Ok(text) = value.cast::<PyString>() {
            return serializer.serialize_str(text.to_str().map_err(|_| unsendable())?);
        }
        if value.is_instance_of::<PyBool>() {
            return serializer.serialize_bool(value.extract().map_err(|_| unsendable())?);
        }
        if value.is_instance_of::<PyInt>() {
            if let Ok(number) = value.extract::<i64>() {
                return serializer.serialize_i64(number);
            }
            return serializer.serialize_u64(value.extract().map_err(|_| unsendable())?);
        }
        if let Ok(number) = value.cast::<PyFloat>() {
            let number = number.value();
            if !number.is_finite() {
                return Err(unsendable());
            }
            return serializer.serialize_f64(number);
        }
        if let Ok(dict) = value.cast::<PyDict>() {
            let mut map = serializer.serialize_map(Some(dict.len()))?;
            for (key, item) in dict.iter() {
                let key = key.cast::<PyString>().map_err(|_| unsendable())?;
                map.serialize_entry(key.to_str().map_err(|_| unsendable())?, &Plain(&item))?;
            }
            return map.end();
        }
        if let Ok(list) = value.cast::<PyList>() {
            return plain_sequence(serializer, list.len(), list.iter());
        }
        if let Ok(tuple) = value.cast::<PyTuple>() {
            return plain_sequence(serializer, tuple.len(), tuple.iter());
        }
        Err(unsendable())
    }
}

/// A list or tuple as a JSON array.
fn plain_sequence<'py, S: Serializer>(
    serializer: S,
    length: usize,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> Result<S::Ok, S::Error> {
    let mut sequence = serializer.serialize_seq(Some(length))?;
    for item in items {
        sequence.serialize_element(&Plain(&item))?;
    }
    sequence.end()
}

/// A value that cannot be sent, and where it is. The place is assembled only on failure:
/// building a path string for every member of every body cost more than the conversion.
struct BadValue {
    /// Innermost first.
    trail: Vec<Step>,
    message: BadMessage,
}

enum Step {
    Key(String),
    Index(usize),
}

enum BadMessage {
    Type(String),
    KeyType(String),
    IntegerRange,
    Float(f64),
    Python(PyErr),
}

impl BadValue {
    fn new(message: BadMessage) -> Self {
        Self {
            trail: Vec::new(),
            message,
        }
    }

    fn at(mut self, step: Step) -> Self {
        self.trail.push(step);
        self
    }

    fn into_pyerr(self, root: &str) -> PyErr {
        let mut path = root.to_owned();
        for step in self.trail.iter().rev() {
            match step {
                Step::Key(key) => {
                    path.push('.');
                    path.push_str(key);
                }
                Step::Index(index) => path.push_str(&format!("[{index}]")),
            }
        }
        match self.message {
            BadMessage::Type(name) => PyTypeError::new_err(format!(
                "{path}: a value of type `{name}` cannot be sent as JSON; use dicts, lists, strings, numbers, booleans or None"
            )),
            BadMessage::KeyType(name) => {
                PyTypeError::new_err(format!("{path}: keys must be strings, not {name}"))
            }
            BadMessage::IntegerRange => {
                PyValueError::new_err(format!("{path}: integer out of range"))
            }
            BadMessage::Float(value) => {
                PyValueError::new_err(format!("{path}: {value} is not valid JSON"))
            }
            BadMessage::Python(error) => error,
        }
    }
}

impl From<PyErr> for BadValue {
    fn from(error: PyErr) -> Self {
        Self::new(BadMessage::Python(error))
    }
}

fn json_of(value: &Bound<'_, PyAny>) -> Result<Value, BadValue> {
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
            .map_err(|_| BadValue::new(BadMessage::IntegerRange));
    }
    if let Ok(number) = value.cast::<PyFloat>() {
        return Number::from_f64(number.value())
            .map(Value::Number)
            .ok_or_else(|| BadValue::new(BadMessage::Float(number.value())));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut object = Map::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            let key = key
                .cast::<PyString>()
                .map_err(|_| BadValue::new(BadMessage::KeyType(type_name(&key))))?
                .to_str()?
                .to_owned();
            match json_of(&item) {
                Ok(item) => {
                    object.insert(key, item);
                }
                Err(bad) => return Err(bad.at(Step::Key(key))),
            }
        }
        return Ok(Value::Object(object));
    }
    if let Ok(list) = value.cast::<PyList>() {
        return sequence(list.iter(), list.len());
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return sequence(tuple.iter(), tuple.len());
    }
    Err(BadValue::new(BadMessage::Type(type_name(value))))
}

fn sequence<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    length: usize,
) -> Result<Value, BadValue> {
    let mut values = Vec::with_capacity(length);
    for (index, item) in items.enumerate() {
        values.push(json_of(&item).map_err(|bad| bad.at(Step::Index(index)))?);
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
