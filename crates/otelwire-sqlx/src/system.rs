//! The database systems the instrumentation knows.

/// Where a pool's connections go, as semantic-convention attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionTarget {
    /// `db.namespace`: the database name (PostgreSQL) or the file name
    /// (SQLite; none for an in-memory database).
    pub namespace: Option<String>,
    /// `server.address`, for client-server databases.
    pub server_address: Option<String>,
    /// `server.port`, for client-server databases.
    pub server_port: Option<u16>,
}

/// A sqlx database the instrumentation can name: `db.system.name` and the
/// connection target. Implemented for `sqlx::Sqlite` and
/// `sqlx::Postgres` (features `sqlite` and `postgres`, both off by default: turn on the
/// one the service uses).
pub trait DbSystem: sqlx::Database {
    /// `db.system.name`, for example `postgresql`.
    const SYSTEM_NAME: &'static str;

    /// The target of connections made with these options.
    fn target(options: &<Self::Connection as sqlx::Connection>::Options) -> ConnectionTarget;

    /// Options that keep sqlx's own per-statement log lines off (the spans
    /// and the slow-query event replace them).
    fn quiet(
        options: <Self::Connection as sqlx::Connection>::Options,
    ) -> <Self::Connection as sqlx::Connection>::Options {
        use sqlx::ConnectOptions;
        options.disable_statement_logging()
    }
}

#[cfg(feature = "sqlite")]
impl DbSystem for sqlx::Sqlite {
    const SYSTEM_NAME: &'static str = "sqlite";

    fn target(options: &sqlx::sqlite::SqliteConnectOptions) -> ConnectionTarget {
        let file = options.get_filename().to_string_lossy();
        // sqlx names in-memory databases `file:sqlx-in-memory-N`.
        let namespace = (!file.is_empty()
            && !file.starts_with("file:sqlx-in-memory")
            && !file.contains(":memory:"))
        .then(|| {
            options
                .get_filename()
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.into_owned())
        });
        ConnectionTarget {
            namespace,
            server_address: None,
            server_port: None,
        }
    }
}

#[cfg(feature = "postgres")]
impl DbSystem for sqlx::Postgres {
    const SYSTEM_NAME: &'static str = "postgresql";

    fn target(options: &sqlx::postgres::PgConnectOptions) -> ConnectionTarget {
        let unix_socket = options.get_socket().is_some() || options.get_host().starts_with('/');
        ConnectionTarget {
            namespace: Some(
                options
                    .get_database()
                    .unwrap_or(options.get_username())
                    .to_owned(),
            ),
            server_address: (!unix_socket).then(|| options.get_host().to_owned()),
            server_port: (!unix_socket).then(|| options.get_port()),
        }
    }
}
