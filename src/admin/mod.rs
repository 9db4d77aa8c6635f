//! The admin HTTP endpoint of `inlet run`: health and readiness probes, Prometheus metrics, a
//! JSON API over the pipelines and tables, and the web page (`page.html`, served from the
//! binary) that shows them.
//!
//! `/healthz`, `/readyz`, `/metrics` and the page are open (probes and scrapers cannot send a
//! token; the page holds no data); `/api/*` requires the bearer token when one is configured.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use inlet_config::{Secret, SourceKind};
use inlet_ingest::status::{PipelineStatus, State as PipelineState};
use inlet_table::Table;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};

const PAGE: &str = include_str!("page.html");

/// A pipeline as the endpoint sees it.
#[derive(Debug)]
pub struct PipelineView {
    pub name: String,
    pub kind: SourceKind,
    pub status: Arc<PipelineStatus>,
    /// Its lake tables by source table name, once opened.
    pub tables: Mutex<BTreeMap<String, Table>>,
}

impl PipelineView {
    pub fn new(name: &str, kind: SourceKind) -> Self {
        PipelineView {
            name: name.to_string(),
            kind,
            status: Arc::default(),
            tables: Mutex::default(),
        }
    }

    fn tables(&self) -> BTreeMap<String, Table> {
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct Admin {
    pub pipelines: Vec<Arc<PipelineView>>,
    pub token: Option<Secret>,
    pub metrics: Option<PrometheusHandle>,
}

/// The endpoint's routes.
pub fn router(admin: Arc<Admin>) -> Router {
    let api = Router::new()
        .route("/api/pipelines", get(pipelines))
        .route("/api/tables", get(tables))
        .route("/api/tables/{name}/timeline", get(timeline))
        .route_layer(middleware::from_fn_with_state(admin.clone(), authorize));
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api)
        .with_state(admin)
}

/// Serves the endpoint on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    admin: Arc<Admin>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(admin))
        .with_graceful_shutdown(stop)
        .await
}

/// Binds the admin address with an error that says which setting to change.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| {
        anyhow::anyhow!(
            "admin.listen {address}: {e} (set [admin] listen to a free port, or \"off\")"
        )
    })
}

async fn authorize(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    if let Some(token) = &admin.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .unwrap_or_default();
        if !same(given.as_bytes(), token.expose().as_bytes()) {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                axum::Json(
                    json!({"error": "a bearer token is required (Authorization: Bearer …)"}),
                ),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Compares in time independent of where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(State(admin): State<Arc<Admin>>) -> Response {
    let waiting: Vec<Value> = admin
        .pipelines
        .iter()
        .filter_map(|p| {
            let status = p.status.get();
            (status.state != PipelineState::Streaming).then(
                || json!({"pipeline": p.name, "state": status.state, "reason": status.reason}),
            )
        })
        .collect();
    if waiting.is_empty() {
        (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "not_streaming": waiting})),
        )
            .into_response()
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    match &admin.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not recorded\n").into_response(),
    }
}

async fn pipelines(State(admin): State<Arc<Admin>>) -> axum::Json<Value> {
    let list: Vec<Value> = admin
        .pipelines
        .iter()
        .map(|p| {
            let s = p.status.get();
            let lag = match (s.state, s.oldest_pending_commit_ts) {
                (PipelineState::Starting | PipelineState::Failed, _) => None,
                (_, None) => Some(0.0),
                (_, Some(ts)) => {
                    Some((chrono::Utc::now().timestamp_micros() - ts).max(0) as f64 / 1e6)
                }
            };
            json!({
                "name": p.name,
                "source": p.kind.name(),
                "state": s.state,
                "reason": s.reason,
                "position": s.position,
                "lag_seconds": lag,
                "changes": s.changes,
                "tables": s.tables.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(Value::Array(list))
}

async fn tables(State(admin): State<Arc<Admin>>) -> axum::Json<Value> {
    let mut list = Vec::new();
    for p in &admin.pipelines {
        for (name, t) in p.status.get().tables {
            list.push(json!({
                "name": name,
                "pipeline": p.name,
                "uri": t.uri,
                "type": t.table_type,
                "state": if t.failed.is_some() { "failed" } else { "ok" },
                "reason": t.failed,
                "latest_instant": t.latest_instant,
                "pending_compactions": t.pending_compactions,
                "rows": t.rows,
                "commits": t.commits,
                "dead_letters": t.dead_letters,
                "copy": t.copy,
            }));
        }
    }
    axum::Json(Value::Array(list))
}

async fn timeline(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Response {
    let table = admin
        .pipelines
        .iter()
        .find_map(|p| p.tables().get(&name).cloned());
    let Some(table) = table else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no table {name:?}")})),
        )
            .into_response();
    };
    match crate::cli::timeline::rows(&table).await {
        Ok(rows) => axum::Json(Value::Array(rows)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": format!("{e:#}")})),
        )
            .into_response(),
    }
}
