//! Outputs that add-on crates (such as `otelwire-files`) plug into the
//! pipeline with [`Builder::with_output`](crate::Builder::with_output).

use std::sync::Arc;

use tracing_subscriber::layer::Layer;

use crate::config::EnvSource;
use crate::{BaseSubscriber, BoxedLayer, Component, InitError, Redactor};

pub(crate) type MakeOutput =
    Box<dyn FnOnce(&OutputContext<'_>) -> Result<Output, InitError> + Send>;

/// What an output added with [`Builder::with_output`](crate::Builder::with_output) is built from: the
/// builder's configuration source and redactor.
#[derive(Debug)]
pub struct OutputContext<'a> {
    pub(crate) env: &'a EnvSource,
    pub(crate) redactor: &'a Redactor,
    pub(crate) baggage: &'a crate::baggage::BaggageAttributes,
}

impl OutputContext<'_> {
    /// A configuration variable, from the process environment or from
    /// [`Builder::env_source`](crate::Builder::env_source); empty values count as unset.
    pub fn env(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }

    /// The redactor in force (outputs are already redacted: this is for
    /// outputs that also want to know which names are secret).
    pub fn redactor(&self) -> &Redactor {
        self.redactor
    }

    /// The baggage members that every line of an output should carry with
    /// its span fields ([`LineFormatter::baggage_attributes`](crate::LineFormatter::baggage_attributes)).
    pub fn baggage_attributes(&self) -> &crate::baggage::BaggageAttributes {
        self.baggage
    }
}

/// An output made by an add-on crate (such as `otelwire-files`) for
/// [`Builder::with_output`](crate::Builder::with_output): a layer that sees events after redaction, and
/// components whose health shows in [`Telemetry::health`](crate::Telemetry::health) and which
/// [`Telemetry::shutdown`](crate::Telemetry::shutdown) flushes.
#[derive(Default)]
pub struct Output {
    pub(crate) layer: Option<BoxedLayer>,
    pub(crate) components: Vec<Arc<dyn Component>>,
    pub(crate) description: Option<String>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("layer", &self.layer.is_some())
            .field("components", &self.components.len())
            .field("description", &self.description)
            .finish()
    }
}

impl Output {
    /// An output that adds nothing (for an add-on that is switched off).
    pub fn none() -> Self {
        Output::default()
    }

    /// An output writing through `layer`.
    pub fn layer<L>(layer: L) -> Self
    where
        L: Layer<BaseSubscriber> + Send + Sync + 'static,
    {
        Output {
            layer: Some(Box::new(layer)),
            components: Vec::new(),
            description: None,
        }
    }

    /// What the startup line says of this output (its `outputs` field),
    /// such as `files in logs: app.jsonl, audit.jsonl`, or why it writes
    /// nothing (`no files: OTELWIRE_LOG_DIR is not set`).
    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds a component reported by [`Telemetry::health`](crate::Telemetry::health) and flushed at
    /// shutdown.
    pub fn with_component(mut self, component: Arc<dyn Component>) -> Self {
        self.components.push(component);
        self
    }
}
