//! A watermark profile (the file `tracemark keygen` writes), read and checked.

use std::path::PathBuf;

use pyo3::prelude::*;
use watermark_core::Profile as CoreProfile;

use crate::errors::core;
use crate::scheme::Scheme;
use crate::watermark::Watermark;

/// A watermark profile (TOML or JSON), as written by `tracemark keygen`.
#[pyclass(frozen, module = "tracemark._native", name = "Profile")]
#[derive(Clone, Debug)]
pub(crate) struct Profile {
    inner: CoreProfile,
    path: PathBuf,
}

#[pymethods]
impl Profile {
    /// Reads and checks a profile; the key is read and checked by `watermark()`.
    #[staticmethod]
    pub(crate) fn load(path: PathBuf) -> PyResult<Self> {
        let inner = core(CoreProfile::load(&path))?;
        Ok(Profile { inner, path })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    fn spec(&self) -> &str {
        &self.inner.spec
    }

    /// The key file, resolved against the profile's directory.
    #[getter]
    fn key_file(&self) -> PathBuf {
        self.inner.resolve(&self.inner.key_file)
    }

    #[getter]
    fn key_fingerprint(&self) -> &str {
        &self.inner.key_fingerprint
    }

    #[getter]
    fn vocab_size(&self) -> u32 {
        self.inner.vocab_size
    }

    #[getter]
    fn scheme(&self) -> Scheme {
        Scheme(self.inner.scheme.clone())
    }

    #[getter]
    fn fpr(&self) -> f64 {
        self.inner.fpr.get()
    }

    #[getter]
    fn tokenizer_fingerprint(&self) -> Option<&str> {
        self.inner
            .tokenizer
            .as_ref()
            .map(|t| t.fingerprint.as_str())
    }

    /// The bound tokenizer.json, resolved against the profile's directory.
    #[getter]
    fn tokenizer_path(&self) -> Option<PathBuf> {
        let binding = self.inner.tokenizer.as_ref()?;
        binding.path.as_ref().map(|p| self.inner.resolve(p))
    }

    /// Loads the key, checks its fingerprint, and builds the watermark.
    pub(crate) fn watermark(&self, py: Python<'_>) -> PyResult<Watermark> {
        let inner = &self.inner;
        let green = py.detach(|| core(inner.green_list()))?;
        Ok(Watermark::new(green, inner.fpr.get(), Some(inner.clone())))
    }

    fn __repr__(&self) -> String {
        format!(
            "Profile(path={:?}, key_fingerprint={:?}, vocab_size={})",
            self.path.display().to_string(),
            self.inner.key_fingerprint,
            self.inner.vocab_size
        )
    }
}
