//! Traces across pods: an `api` and two gateway processes export spans over
//! OTLP/HTTP to a receiver here that decodes them with the official
//! protobuf definitions (`opentelemetry-proto`). A REST send's trace starts
//! in the api (`http`, `store.append`, `bus.publish`) and continues on each
//! gateway that delivers it (`bus.deliver`, carried by the bus envelope's
//! `traceparent`); a socket send's trace starts on the gateway it came in on
//! and reaches the other. Traces are off unless `OMNIBIZ_OTLP_ENDPOINT` is set.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::json;

use crate::common::cluster::free_port;
use crate::common::sio::SioClient;
use crate::common::{Backend, business, eventually, omnibiz_process, open, settings, spawn_with};
use omnibiz::app::Target;

/// A span as received: its service, trace, name, and parent.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace: Vec<u8>,
    name: String,
    id: Vec<u8>,
    parent: Vec<u8>,
}

async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let mut out = sink.lock().expect("spans");
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                        .map(|v| match v {
                            AnyValue::StringValue(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                        out.push(Received {
                            service: service.clone(),
                            trace: s.trace_id,
                            name: s.name,
                            id: s.span_id,
                            parent: s.parent_span_id,
                        });
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", free_port())).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_one_trace_from_the_api_through_redis_to_each_gateway() {
    let (endpoint, spans) = receiver().await;
    let tmp = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_traces_{}", bson::oid::ObjectId::new());
    let setup = spawn_with(Backend::Mongo, settings(Backend::Mongo, tmp.path(), &db), Target::Api, tmp).await;
    let b = business(&setup.store, "Traced", 1).await;
    let conv = open(&setup, &b, 0).await;
    let env = [
        ("OMNIBIZ_OTLP_ENDPOINT", endpoint.as_str()),
        ("OMNIBIZ_TRACE_SAMPLE_RATIO", "1"),
        // The batch exporter's delay (the SDK's standard variable): seconds become 100 ms.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("LOG_LEVEL", "info"),
    ];
    let (_api, api) = omnibiz_process("api", &db, &env).await;
    let (_g1, g1) = omnibiz_process("gateway", &db, &env).await;
    let (_g2, g2) = omnibiz_process("gateway", &db, &env).await;
    let mut owner = SioClient::connect(&g1, Some(&b.owner_token)).await.expect("owner");
    let mut customer = SioClient::connect(&g2, Some(&b.customer_tokens[0])).await.expect("customer");
    for c in [&mut owner, &mut customer] {
        assert_eq!(c.call("join_conversation", json!(conv)).await["ok"], true);
    }

    // A REST send: one trace, from the api to both gateways.
    let r = reqwest::Client::new()
        .post(format!("{api}/api/messages/send"))
        .bearer_auth(&b.customer_tokens[0])
        .json(&json!({"conversationId": conv, "content": "traced over REST"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    owner.expect("message_received").await;
    let rest_trace = |all: &[Received]| -> Option<Vec<u8>> {
        let root = all.iter().find(|s| s.service == "omnibiz-api" && s.name == "http")?;
        let in_trace: Vec<&Received> = all.iter().filter(|s| s.trace == root.trace).collect();
        let names: HashSet<(&str, &str)> = in_trace.iter().map(|s| (s.service.as_str(), s.name.as_str())).collect();
        let delivered = in_trace.iter().filter(|s| s.service == "omnibiz-gateway" && s.name == "bus.deliver").count();
        (names.contains(&("omnibiz-api", "store.append"))
            && names.contains(&("omnibiz-api", "bus.publish"))
            && delivered >= 2)
            .then(|| root.trace.clone())
    };
    let found =
        eventually(100, Duration::from_millis(200), || async { rest_trace(&spans.lock().expect("spans")).is_some() })
            .await;
    let all = spans.lock().expect("spans").clone();
    assert!(found, "a REST send's trace spans the api and both gateways: {:#?}", summary(&all));
    // Each delivery is a child of a publish in the api (the envelope carried its context).
    let trace = rest_trace(&all).expect("trace");
    let ids: HashMap<&[u8], &Received> =
        all.iter().filter(|s| s.trace == trace).map(|s| (s.id.as_slice(), s)).collect();
    for d in all.iter().filter(|s| s.trace == trace && s.name == "bus.deliver") {
        let parent =
            ids.get(d.parent.as_slice()).unwrap_or_else(|| panic!("the delivery's parent is in the trace: {d:?}"));
        assert_eq!((parent.service.as_str(), parent.name.as_str()), ("omnibiz-api", "bus.publish"));
    }

    // A socket send on gateway 1: its trace reaches gateway 2.
    let ack = owner.call("send_message", json!({"conversationId": conv, "message": "traced over a socket"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    customer.expect("message_received").await;
    let socket_trace = |all: &[Received]| -> bool {
        all.iter().filter(|s| s.service == "omnibiz-gateway" && s.name == "socket.event").any(|root| {
            all.iter().any(|s| s.trace == root.trace && s.name == "bus.deliver" && s.service == "omnibiz-gateway")
                && all.iter().any(|s| s.trace == root.trace && s.name == "store.append")
        })
    };
    let found =
        eventually(100, Duration::from_millis(200), || async { socket_trace(&spans.lock().expect("spans")) }).await;
    assert!(
        found,
        "a socket send's trace reaches the delivering gateways: {:#?}",
        summary(&spans.lock().expect("spans"))
    );
    setup.finish().await;
}

fn summary(all: &[Received]) -> Vec<String> {
    all.iter()
        .map(|s| {
            format!("{} {} trace={}", s.service, s.name, s.trace.iter().map(|b| format!("{b:02x}")).collect::<String>())
        })
        .collect()
}
