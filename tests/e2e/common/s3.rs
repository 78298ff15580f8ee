//! A real S3-protocol server for the attachment tests: moto's server (from
//! PyPI, installed by `scripts/services.sh s3-tools`), started on a free
//! port with one bucket. It speaks the S3 wire protocol, so the application
//! talks to it through its real S3 client code.
#![allow(unreachable_pub)]

use std::path::PathBuf;

use super::cluster::{Proc, free_port};

pub struct S3Server {
    pub proc: Proc,
    pub bucket: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts moto and creates `bucket`.
    pub async fn start(bucket: &str) -> Self {
        let bin = std::env::var("OMNIBIZ_MOTO_BIN").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/omnibiz-tools/moto-venv/bin/moto_server")
        });
        assert!(bin.exists(), "{} is missing: run scripts/test.sh (it installs moto's server)", bin.display());
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let args = vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()];
        let mut proc = Proc::new("moto", port, bin, args, dir.path().join("moto.log"));
        proc.start().await;
        let s = Self { proc, bucket: bucket.to_owned(), http: reqwest::Client::new(), _dir: dir };
        let r = s.http.put(format!("{}/{bucket}", s.endpoint())).send().await.expect("create bucket");
        assert!(r.status().is_success(), "creating bucket {bucket}: {}", r.status());
        s
    }

    pub fn endpoint(&self) -> String {
        self.proc.url()
    }

    /// The environment that points the binary at this bucket.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OMNIBIZ_S3_BUCKET", self.bucket.clone()),
            ("OMNIBIZ_S3_ENDPOINT", self.endpoint()),
            ("OMNIBIZ_S3_REGION", "us-east-1".into()),
            ("OMNIBIZ_S3_ACCESS_KEY_ID", "testing".into()),
            ("OMNIBIZ_S3_SECRET_ACCESS_KEY", "testing".into()),
        ]
    }

    /// Points in-process settings at this bucket.
    pub fn apply(&self, s: &mut omnibiz_service::config::Settings) {
        s.s3_bucket = Some(self.bucket.clone());
        s.s3_endpoint = Some(self.endpoint());
        s.s3_access_key_id = Some("testing".into());
        s.s3_secret_access_key = Some("testing".to_owned().into());
    }

    /// An object's bytes straight from the server, if it exists.
    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let r = self.http.get(format!("{}/{}/{key}", self.endpoint(), self.bucket)).send().await.expect("get object");
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        let status = r.status();
        assert!(
            status.is_success(),
            "GET {key}: {status} {} (keys: {:?})",
            r.text().await.unwrap_or_default(),
            self.keys().await
        );
        Some(r.bytes().await.expect("object body").to_vec())
    }

    /// Every key in the bucket.
    pub async fn keys(&self) -> Vec<String> {
        let r = self
            .http
            .get(format!("{}/{}?list-type=2", self.endpoint(), self.bucket))
            .send()
            .await
            .expect("list bucket");
        let xml = r.text().await.expect("listing");
        xml.split("<Key>").skip(1).filter_map(|p| p.split("</Key>").next()).map(str::to_owned).collect()
    }
}
