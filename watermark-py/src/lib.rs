//! `tracemark._native`: the Python binding of watermark-core.
//!
//! Thin on purpose: every function here extracts owned (or borrowed numpy) inputs, releases the
//! GIL for anything that loops over tokens or logits, calls the core, and maps the core's one
//! error type to Python exceptions carrying the core's message. All statistics come from the
//! core, so Python and the `tracemark` CLI report the same numbers bit for bit. The pure-Python
//! package `tracemark` re-exports these classes and holds the engine adapters.
//!
//! Modules: `errors` (exceptions), `ids` and `logits` (Python inputs), `py_json` (results
//! out), one per class or concept (`scheme`, `profile`, `scores`, `tuple_set`, `watermark`,
//! `audit`), the two halves of a scan spread over workers (`shard`), and the work behind
//! `Watermark`'s methods (`hook`, `detection`, `draw`: the account's token).

mod audit;
mod detection;
mod draw;
mod errors;
mod hook;
mod ids;
mod logits;
mod profile;
mod py_json;
mod scheme;
mod scores;
mod shard;
mod tuple_set;
mod watermark;

use pyo3::prelude::*;
use watermark_core::DEFAULT_FPR;
use watermark_core::SPEC_VERSION;

use crate::errors::{InputError, ProfileError, TracemarkError};

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TracemarkError", py.get_type::<TracemarkError>())?;
    m.add("ProfileError", py.get_type::<ProfileError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("SPEC_VERSION", SPEC_VERSION)?;
    m.add("DEFAULT_FPR", DEFAULT_FPR)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<scheme::Scheme>()?;
    m.add_class::<profile::Profile>()?;
    m.add_class::<watermark::Watermark>()?;
    m.add_class::<scores::Score>()?;
    m.add_class::<scores::Windowed>()?;
    m.add_class::<scores::Detection>()?;
    m.add_class::<tuple_set::TupleSet>()?;
    m.add_class::<audit::WindowFilter>()?;
    m.add_class::<audit::Audit>()?;
    m.add_function(wrap_pyfunction!(shard::shard_batch, m)?)?;
    m.add_function(wrap_pyfunction!(shard::tally_partition, m)?)?;
    Ok(())
}
