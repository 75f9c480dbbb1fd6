//! A database of its own for each test, on the PostgreSQL server the test machine runs
//! (`RIPPLEKV_TEST_POSTGRES`, by default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped when the test ends. A server that cannot be reached fails the test: these
//! tests are never skipped.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

/// The server's admin URL.
pub(crate) fn admin_url() -> String {
    std::env::var("RIPPLEKV_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database made for one test; dropped (with its connections) when this is.
#[derive(Debug)]
pub(crate) struct TestDatabase {
    pub(crate) name: String,
    pub(crate) url: String,
}

impl TestDatabase {
    pub(crate) async fn create() -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ripplekv_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let admin = admin_url();
        let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.unwrap_or_else(|err| {
            panic!("PostgreSQL is not reachable at {admin} ({err}); start it or set RIPPLEKV_TEST_POSTGRES")
        });
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        TestDatabase { name, url }
    }
}

/// Which of a database's connections [`TestDatabase::kill`] terminates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Connections {
    /// Every one (but the killer's own).
    All,
    /// The nodes' `LISTEN` connections.
    Listeners,
}

impl TestDatabase {
    /// Terminates connections to this database, as an operator or a failing network
    /// would; returns how many.
    pub(crate) async fn kill(&self, which: Connections) -> i64 {
        let (client, connection) = tokio_postgres::connect(&admin_url(), NoTls).await.unwrap();
        tokio::spawn(connection);
        let only = match which {
            Connections::All => "",
            Connections::Listeners => "AND query = 'LISTEN ripplekv_changes'",
        };
        let sql = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() {only}"
        );
        client.query_one(&sql, &[&self.name]).await.unwrap().get(0)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&admin_url(), NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}
