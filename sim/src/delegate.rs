//! Wrappers around a connector that change what its tasks do (inject faults, watch for failures) pass
//! everything the connector itself does straight through: [`delegate_connector!`] writes that part.

/// Implements `Connector` for `$wrapper` by calling the same methods on its `inner` connector.
macro_rules! delegate_connector {
    ($wrapper:ty) => {
        #[async_trait::async_trait]
        impl sluice_core::api::Connector for $wrapper {
            fn config_def(&self) -> sluice_core::config::ConfigDef {
                self.inner.config_def()
            }

            fn validate(
                &self,
                config: &sluice_core::config::ConfigMap,
            ) -> Result<(), sluice_core::config::ConfigError> {
                self.inner.validate(config)
            }

            async fn start(
                &mut self,
                config: &sluice_core::config::ConfigMap,
                context: sluice_core::api::ConnectorContext,
            ) -> Result<(), sluice_core::api::ConnectError> {
                self.inner.start(config, context).await
            }

            fn task_configs(&self, max_tasks: usize) -> Vec<sluice_core::config::ConfigMap> {
                self.inner.task_configs(max_tasks)
            }

            async fn stop(&mut self) -> Result<(), sluice_core::api::ConnectError> {
                self.inner.stop().await
            }
        }
    };
}

pub(crate) use delegate_connector;
