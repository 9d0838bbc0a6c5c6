//! The admin listener: Prometheus metrics and a health check, kept off the
//! MCP listener so the MCP endpoint answers nothing but MCP.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::app::McpGate;

pub struct Admin {
    pub gate: Arc<McpGate>,
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, ds: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, ctype, body) = match ds.req_header().uri.path() {
            "/metrics" => (
                200,
                "text/plain; version=0.0.4",
                self.gate.metrics.render().into_bytes(),
            ),
            "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
            _ => (404, "text/plain", b"not found\n".to_vec()),
        };
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .header("content-length", body.len())
            .body(body)
            .unwrap_or_default()
    }
}
