//! Reading the server's `/metrics`: memory figures and agent request batching.

use super::{failed, BenchError, Target};

/// The server's `/metrics` text.
async fn server_metrics(target: &Target, http: &reqwest::Client) -> Result<String, BenchError> {
    http.get(format!("{}/metrics", target.server))
        .send()
        .await
        .map_err(|e| failed("reading /metrics")(e.into()))?
        .text()
        .await
        .map_err(|e| failed("reading /metrics")(e.into()))
}

/// The sum of a metric's samples (every label set) in a `/metrics` text; `None` if it has none.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            // `name value` or `name{labels} value`, not a longer name sharing the prefix.
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The server's peak and current RSS in MiB, from its `/metrics`.
pub(super) async fn server_memory(target: &Target, http: &reqwest::Client) -> Result<(f64, f64), BenchError> {
    let text = server_metrics(target, http).await?;
    let mib = |name: &str| metric_sum(&text, name).map(|b| b / (1024.0 * 1024.0));
    match (mib("process_resident_memory_peak_bytes"), mib("process_resident_memory_bytes")) {
        (Some(peak), Some(now)) => Ok((peak, now)),
        _ => Err(BenchError::Unexpected("the server's /metrics has no process memory figures".to_owned())),
    }
}

/// Agents' requests per database statement so far (the server batches claims, heartbeats and
/// results), from its `/metrics`; `None` before any.
pub(super) async fn requests_per_statement(
    target: &Target,
    http: &reqwest::Client,
) -> Result<Option<f64>, BenchError> {
    let text = server_metrics(target, http).await?;
    Ok(metric_sum(&text, "hotpatch_agent_batched_requests_total")
        .zip(metric_sum(&text, "hotpatch_agent_batches_total"))
        .filter(|&(_, batches)| batches > 0.0)
        .map(|(requests, batches)| requests / batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_sums_its_label_sets_and_ignores_longer_names() {
        let text = "# HELP x\nhotpatch_agent_batches_total{request=\"claim\"} 3\n\
                    hotpatch_agent_batches_total{request=\"result\"} 4\n\
                    hotpatch_agent_batches_total_other 100\nprocess_resident_memory_bytes 2048\n";
        assert_eq!(metric_sum(text, "hotpatch_agent_batches_total"), Some(7.0));
        assert_eq!(metric_sum(text, "process_resident_memory_bytes"), Some(2048.0));
        assert_eq!(metric_sum(text, "absent"), None);
    }
}
