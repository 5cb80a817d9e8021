//! Any sqlx executor, instrumented.

use std::fmt;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx::{Database, Either, Executor};
use sqlx_core::executor::Execute;
use sqlx_core::sql_str::SqlStr;

use crate::instrument::{Counted, Shared};

/// An executor (a `&mut` connection, a transaction's `&mut *tx`, a `&Pool`)
/// whose queries are instrumented with the settings of an
/// [`InstrumentedPool`](crate::InstrumentedPool). Made by
/// [`InstrumentedPool::on`](crate::InstrumentedPool::on); pass it wherever
/// sqlx takes an executor.
pub struct Traced<'c, X> {
    pub(crate) inner: X,
    pub(crate) shared: &'c Shared,
}

impl<X: fmt::Debug> fmt::Debug for Traced<'_, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traced")
            .field("inner", &self.inner)
            .field("db.system.name", &self.shared.system)
            .finish()
    }
}

impl<'c, X, DB> Executor<'c> for Traced<'c, X>
where
    X: Executor<'c, Database = DB>,
    DB: Database,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let call = self.shared.start();
        let query = call.probe(query);
        let inner = self.inner.fetch_many(query);
        Box::pin(Counted { inner, call })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let mut call = self.shared.start();
        let query = call.probe(query);
        let inner = self.inner.fetch_optional(query);
        Box::pin(async move {
            let result = inner.await;
            match &result {
                Ok(row) => {
                    if row.is_some() {
                        call.row();
                    }
                    call.finish(None);
                }
                Err(e) => call.finish(Some(e)),
            }
            result
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'c: 'e,
    {
        // Preparing runs no query: no span, the queries that use the
        // statement get theirs.
        self.inner.prepare_with(sql, parameters)
    }

    // Required by sqlx-core's `offline` feature, which this crate always
    // turns on (sqlx's `macros` does too): see Cargo.toml.
    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx_core::describe::Describe<DB>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.inner.describe(sql)
    }
}
