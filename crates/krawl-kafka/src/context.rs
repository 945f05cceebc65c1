//! The librdkafka client context: routes librdkafka's logs into `tracing`,
//! remembers connection errors so a failed connect can say *why*, and reads
//! each broker's ApiVersions answer out of librdkafka's `FEATURE` debug log
//! (librdkafka has no public API for the negotiated versions).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// One connection-level error librdkafka reported.
#[derive(Debug, Clone)]
pub struct ClientError {
    pub code: Option<RDKafkaErrorCode>,
    pub reason: String,
}

#[derive(Debug, Default)]
struct State {
    errors: Vec<ClientError>,
    /// broker name (as librdkafka logs it) → api key → (min, max)
    api_versions: BTreeMap<String, BTreeMap<i16, (i16, i16)>>,
}

/// Context of every krawl admin client.
#[derive(Debug, Default)]
pub struct KrawlContext {
    state: Mutex<State>,
}

const MAX_ERRORS: usize = 64;

impl KrawlContext {
    /// Errors seen so far (bounded; oldest kept).
    pub fn errors(&self) -> Vec<ClientError> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .errors
            .clone()
    }

    /// [`Self::api_versions`], once the ApiVersions log lines have been
    /// served. They arrive asynchronously through the main queue, so wait
    /// (up to `max`) until some are there and no more arrive for 30 ms.
    pub async fn settled_api_versions(
        &self,
        max: std::time::Duration,
    ) -> BTreeMap<i16, (i16, i16)> {
        let deadline = std::time::Instant::now() + max;
        let mut last = usize::MAX;
        loop {
            let seen = self.api_version_lines();
            if (seen > 0 && seen == last) || std::time::Instant::now() >= deadline {
                return self.api_versions();
            }
            last = seen;
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
    }

    fn api_version_lines(&self) -> usize {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.api_versions.values().map(BTreeMap::len).sum()
    }

    /// The narrowest version range of each API across the brokers seen.
    pub fn api_versions(&self) -> BTreeMap<i16, (i16, i16)> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: BTreeMap<i16, (i16, i16)> = BTreeMap::new();
        let mut first = true;
        for apis in st.api_versions.values() {
            if first {
                out = apis.clone();
                first = false;
                continue;
            }
            out.retain(|k, _| apis.contains_key(k));
            for (k, (lo, hi)) in out.iter_mut() {
                if let Some((blo, bhi)) = apis.get(k) {
                    *lo = (*lo).max(*blo);
                    *hi = (*hi).min(*bhi);
                }
            }
        }
        out
    }

    fn record_api_version(&self, message: &str) {
        // "[thrd:...]: <broker>:   ApiKey Metadata (3) Versions 0..12"
        let Some(idx) = message.find("ApiKey ") else {
            return;
        };
        let broker = message[..idx]
            .split("]: ")
            .nth(1)
            .unwrap_or("")
            .trim_end()
            .trim_end_matches(':')
            .to_string();
        let rest = &message[idx..];
        let parsed = (|| {
            let open = rest.find('(')?;
            let close = rest.find(')')?;
            let key: i16 = rest.get(open + 1..close)?.parse().ok()?;
            let vers = rest.split("Versions ").nth(1)?;
            let (lo, hi) = vers.trim().split_once("..")?;
            Some((key, lo.parse::<i16>().ok()?, hi.parse::<i16>().ok()?))
        })();
        if let Some((key, lo, hi)) = parsed {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.api_versions
                .entry(broker)
                .or_default()
                .insert(key, (lo, hi));
        }
    }
}

impl ClientContext for KrawlContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "APIVERSION" {
            self.record_api_version(message);
            return;
        }
        // One notch down: librdkafka's connection failures are "errors" to
        // it, but krawl reports the classified cause itself.
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Error => tracing::warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Warning | RDKafkaLogLevel::Notice => {
                tracing::info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Info => tracing::debug!(target: "librdkafka", fac, "{message}"),
            // librdkafka debug output is only enabled for the FEATURE context
            // (ApiVersions); the rest is not worth a log line.
            RDKafkaLogLevel::Debug => {}
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.errors.len() < MAX_ERRORS {
            st.errors.push(ClientError {
                code: error.rdkafka_error_code(),
                reason: reason.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_librdkafka_apiversion_lines() {
        let ctx = KrawlContext::default();
        ctx.log(
            RDKafkaLogLevel::Debug,
            "APIVERSION",
            "[thrd:127.0.0.1:9092/bootstrap]: 127.0.0.1:9092/bootstrap:   ApiKey Metadata (3) Versions 0..12",
        );
        ctx.log(
            RDKafkaLogLevel::Debug,
            "APIVERSION",
            "[thrd:127.0.0.1:9092/bootstrap]: 127.0.0.1:9092/bootstrap:   ApiKey Fetch (1) Versions 4..16",
        );
        ctx.log(
            RDKafkaLogLevel::Debug,
            "APIVERSION",
            "[thrd:b2:9092/2]: b2:9092/2:   ApiKey Metadata (3) Versions 1..9",
        );
        let v = ctx.api_versions();
        // Narrowest range across brokers; an API one broker lacks is dropped.
        assert_eq!(v.get(&3), Some(&(1, 9)));
        assert_eq!(v.get(&1), None);
    }
}
