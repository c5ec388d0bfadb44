import SluicePostgres
import SluiceCore
public import SluiceQueue
public import Logging
import SluiceSQLite

/// The backends Sluice knows, by the form of the database setting: the one place that tells
/// them apart. A new backend adds one line here (see ARCHITECTURE.md).
public enum Backends {
    /// Runs `body` with the backend of `database` (a `postgres://` URL, else a SQLite path);
    /// a server's connection pool of `maxConnections` runs for exactly that long.
    public static func with<T: Sendable>(database: String, maxConnections: Int, logger: Logger? = nil,
                                         _ body: @Sendable (any Backend) async throws -> T) async throws -> T {
        if PostgresPool.isURL(database) {
            return try await PostgresBackend.with(url: database, maxConnections: maxConnections, logger: logger) { try await body($0) }
        }
        return try await body(SQLiteBackend(path: database))
    }

    /// The export ledger of `backend`, or why it cannot hold one.
    public static func exportStore(_ backend: any Backend) async throws -> any ExportStore {
        guard let store = try await backend.exportStore() else {
            throw SluiceError(.invalidConfig, "\(backend.displayName) holds tables only: keep the export ledger on SQLite or PostgreSQL")
        }
        return store
    }
}
