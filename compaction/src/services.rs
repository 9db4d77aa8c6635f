//! The table services' handle: a table and the services lease, which keeps two service runs
//! (compactions, cleans, archivals) from overlapping while a writer may go on beside them.

use inlet_table::commit::lease::{Lease, LeaseKind};
use inlet_table::{Result, Table};

/// A table opened for its services.
#[derive(Debug)]
pub struct TableServices {
    table: Table,
    lease: Option<Lease>,
}

impl TableServices {
    /// Takes the table's services lease; fails fast if another service run holds it.
    pub async fn open(table: Table) -> Result<TableServices> {
        let lease = Lease::acquire_kind(
            table.storage(),
            LeaseKind::Services,
            table.config().lease_ttl,
        )
        .await?;
        Ok(TableServices {
            table,
            lease: Some(lease),
        })
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The services lease, which completes the services' actions.
    pub fn lease(&self) -> Result<&Lease> {
        self.lease
            .as_ref()
            .ok_or_else(|| inlet_table::Error::WriterLeaseLost {
                table: self.table.storage().uri().to_string(),
                reason: "the table services were closed".to_string(),
            })
    }

    /// Fails unless the services lease is still held.
    pub async fn check_lease(&self) -> Result<()> {
        match &self.lease {
            Some(lease) => lease.check().await,
            None => Ok(()),
        }
    }

    /// Releases the lease.
    pub async fn close(mut self) -> Result<()> {
        match self.lease.take() {
            Some(lease) => lease.release().await,
            None => Ok(()),
        }
    }
}
