import VaporCSQLite
import Foundation
public import SluiceCore

/// A thin, synchronous wrapper over one sqlite3 connection (the C library bundled by
/// sqlite-nio, so no system package is needed). Not thread-safe: its owner serializes
/// every use (a serial queue, or one thread at a time), which is why it may be sent.
public final class SQLiteConnection: @unchecked Sendable {
    let db: OpaquePointer
    public let path: String

    public init(path: String, readOnly: Bool = false) throws(SluiceError) {
        var handle: OpaquePointer?
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let rc = sqlite_nio_sqlite3_open_v2(path, &handle, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let handle else {
            let msg = handle.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "error \(rc)"
            if let handle { sqlite_nio_sqlite3_close_v2(handle) }
            throw SluiceError(.database, "cannot open SQLite database '\(path)': \(msg)")
        }
        db = handle
        self.path = path
        sqlite_nio_sqlite3_busy_timeout(db, 10_000)
        sqlite_nio_sqlite3_extended_result_codes(db, 1)
    }

    deinit { sqlite_nio_sqlite3_close_v2(db) }

    var lastError: String { String(cString: sqlite_nio_sqlite3_errmsg(db)) }

    func error(_ rc: Int32, _ context: String) -> SluiceError {
        let primary = rc & 0xFF
        // A value of the wrong type for a STRICT column will not fit on a retry either.
        if sqlite_nio_sqlite3_extended_errcode(db) == 3091 /* SQLITE_CONSTRAINT_DATATYPE */ {
            return SluiceError(.invalidSchema, "\(context): \(lastError) (the column's type does not fit this value: declare it in sluice.yml)")
        }
        // A full disk shows as SQLITE_FULL, or as an I/O error whose system error is ENOSPC.
        if primary == SQLITE_FULL || (primary == SQLITE_IOERR && sqlite_nio_sqlite3_system_errno(db) == ENOSPC) {
            let parent = (path as NSString).deletingLastPathComponent, folder = parent.isEmpty ? "." : parent
            return SluiceError(.io, "\(context): the disk is full writing '\(path)' (\(Self.freeSpace(folder)) free in \(folder)); free some space and run again")
        }
        let code: SluiceError.Code = primary == SQLITE_CONSTRAINT ? .constraint : .database
        return SluiceError(code, "\(context): \(lastError)")
    }

    /// Free space of the file system holding `folder`, for messages (`"1.5 MiB"`).
    static func freeSpace(_ folder: String) -> String {
        var st = statvfs()
        guard statvfs(folder, &st) == 0 else { return "unknown space" }
        let bytes = Double(st.f_bavail) * Double(st.f_frsize)
        let gib = 1_073_741_824.0, mib = 1_048_576.0
        return bytes >= gib ? String(format: "%.1f GiB", bytes / gib) : String(format: "%.1f MiB", bytes / mib)
    }

    /// After a failed write, gives the write-ahead log's space back to the disk (a failed load
    /// may have spilled much of its transaction there). Best effort: a busy reader keeps it.
    public func shrinkLog() {
        _ = sqlite_nio_sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nil, nil, nil)
    }

    /// Runs one or more statements that take no parameters and return no rows.
    public func execute(_ sql: String) throws(SluiceError) {
        let rc = sqlite_nio_sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, "SQLite") }
    }

    /// ``execute(_:)``, waiting while another process holds the lock in a way the busy
    /// handler does not cover (switching a new database to WAL as another opens it).
    public func executeWhenFree(_ sql: String) throws(SluiceError) {
        var attempt = 0
        while true {
            let rc = sqlite_nio_sqlite3_exec(db, sql, nil, nil, nil)
            if rc == SQLITE_OK { return }
            guard (rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED, attempt < 500 else { throw error(rc, "SQLite") }
            attempt += 1
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    public func prepare(_ sql: String) throws(SluiceError) -> SQLiteStatement {
        var stmt: OpaquePointer?
        let rc = sqlite_nio_sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, "SQLite cannot prepare a statement") }
        return SQLiteStatement(stmt: stmt, connection: self)
    }

    /// Prepares exactly one statement: text after it (a second statement) is refused.
    public func prepareOne(_ sql: String) throws(SluiceError) -> SQLiteStatement {
        var stmt: OpaquePointer?
        var tail: UnsafePointer<CChar>?
        let rest: String? = sql.withCString { base in
            let rc = sqlite_nio_sqlite3_prepare_v3(db, base, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, &tail)
            guard rc == SQLITE_OK else { return nil }
            return tail.map { String(cString: $0) } ?? ""
        }
        guard let rest, let stmt else { throw error(sqlite_nio_sqlite3_errcode(db), "SQLite cannot prepare a statement") }
        let statement = SQLiteStatement(stmt: stmt, connection: self)
        guard rest.allSatisfy({ $0.isWhitespace || $0 == ";" }) else {
            throw SluiceError(.invalidArgument, "one SQL statement expected; found more after it: '\(SourceLocation.excerpt(rest))'")
        }
        return statement
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int64 { sqlite_nio_sqlite3_changes64(db) }

    /// Runs a query and returns all its rows as values (for small metadata queries only).
    public func query(_ sql: String, _ binds: [SQLiteValue] = []) throws(SluiceError) -> [[SQLiteValue]] {
        let st = try prepare(sql)
        for (i, b) in binds.enumerated() { st.bind(i + 1, b) }
        var rows: [[SQLiteValue]] = []
        while try st.step() { rows.append((0..<st.columnCount).map { st.value($0) }) }
        return rows
    }
}

/// A value as SQLite stores it.
public enum SQLiteValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var int: Int64? { if case .integer(let v) = self { v } else { nil } }
    public var string: String? { if case .text(let v) = self { v } else { nil } }
    public var double: Double? { switch self { case .real(let v): v; case .integer(let v): Double(v); default: nil } }
    /// The value as text for a rejects file (nil for NULL, hex for a blob).
    public var rendered: String? {
        switch self {
        case .null: nil
        case .integer(let v): String(v)
        case .real(let v): String(v)
        case .text(let v): v
        case .blob(let b): b.map { String(format: "%02x", $0) }.joined()
        }
    }
}

/// A prepared statement. Values bound from batch buffers use SQLITE_STATIC: the caller
/// keeps the buffers alive until `step` returns, so nothing is copied.
public final class SQLiteStatement {
    let stmt: OpaquePointer
    let connection: SQLiteConnection

    init(stmt: OpaquePointer, connection: SQLiteConnection) {
        self.stmt = stmt
        self.connection = connection
    }

    deinit { sqlite_nio_sqlite3_finalize(stmt) }

    public var columnCount: Int { Int(sqlite_nio_sqlite3_column_count(stmt)) }

    /// The statement's SQL text.
    var sql: String { sqlite_nio_sqlite3_sql(stmt).map { String(cString: $0) } ?? "" }

    /// Whether the statement cannot write to the database.
    public var isReadOnly: Bool { sqlite_nio_sqlite3_stmt_readonly(stmt) != 0 }

    /// Steps once; true when a row is available. Resets automatically on done.
    @discardableResult
    public func step() throws(SluiceError) -> Bool {
        let rc = sqlite_nio_sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        sqlite_nio_sqlite3_reset(stmt)
        if rc == SQLITE_DONE { return false }
        throw connection.error(rc, "SQLite")
    }

    /// Steps a statement that returns no rows, and resets it. Returns the result code
    /// so that callers can treat constraint failures as per-row rejects.
    @inline(__always)
    func run() -> Int32 {
        let rc = sqlite_nio_sqlite3_step(stmt)
        sqlite_nio_sqlite3_reset(stmt)
        return rc
    }

    public func clearBindings() { sqlite_nio_sqlite3_clear_bindings(stmt) }

    /// Ends a statement that was stepped to a row, so it can run again.
    public func reset() { sqlite_nio_sqlite3_reset(stmt) }

    @inline(__always) func bindNull(_ i: Int32) { sqlite_nio_sqlite3_bind_null(stmt, i) }
    @inline(__always) func bind(_ i: Int32, int v: Int64) { sqlite_nio_sqlite3_bind_int64(stmt, i, v) }
    @inline(__always) func bind(_ i: Int32, double v: Double) { sqlite_nio_sqlite3_bind_double(stmt, i, v) }

    /// Binds text without copying; `p` must stay valid until the statement is stepped.
    @inline(__always) func bind(_ i: Int32, staticText p: UnsafeRawBufferPointer) {
        let ptr = p.baseAddress?.assumingMemoryBound(to: CChar.self) ?? Self.emptyString
        sqlite_nio_sqlite3_bind_text(stmt, i, ptr, Int32(p.count), nil)
    }

    @inline(__always) func bind(_ i: Int32, staticBlob p: UnsafeRawBufferPointer) {
        sqlite_nio_sqlite3_bind_blob(stmt, i, p.baseAddress ?? UnsafeRawPointer(Self.emptyString), Int32(p.count), nil)
    }

    /// A non-NULL pointer for empty text (a NULL pointer would bind SQL NULL).
    static var emptyString: UnsafePointer<CChar> {
        UnsafeRawPointer(("" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
    }

    /// Binds a value, copying text and blobs (SQLITE_TRANSIENT).
    public func bind(_ index: Int, _ v: SQLiteValue) {
        let i = Int32(index)
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        switch v {
        case .null: sqlite_nio_sqlite3_bind_null(stmt, i)
        case .integer(let x): sqlite_nio_sqlite3_bind_int64(stmt, i, x)
        case .real(let x): sqlite_nio_sqlite3_bind_double(stmt, i, x)
        case .text(let s): sqlite_nio_sqlite3_bind_text(stmt, i, s, -1, transient)
        case .blob(let b): b.withUnsafeBytes { _ = sqlite_nio_sqlite3_bind_blob(stmt, i, $0.baseAddress, Int32($0.count), transient) }
        }
    }

    /// The storage class of column `col` of the current row.
    public enum Kind: Sendable { case null, integer, real, text, blob }

    public func kind(_ col: Int) -> Kind {
        switch sqlite_nio_sqlite3_column_type(stmt, Int32(col)) {
        case SQLITE_INTEGER: .integer
        case SQLITE_FLOAT: .real
        case SQLITE_TEXT: .text
        case SQLITE_BLOB: .blob
        default: .null
        }
    }

    public func int64(_ col: Int) -> Int64 { sqlite_nio_sqlite3_column_int64(stmt, Int32(col)) }
    public func double(_ col: Int) -> Double { sqlite_nio_sqlite3_column_double(stmt, Int32(col)) }

    /// The bytes of a text or blob column, without copying; valid until the next step.
    public func bytes(_ col: Int) -> UnsafeRawBufferPointer {
        let c = Int32(col)
        let p = sqlite_nio_sqlite3_column_blob(stmt, c)
        let n = Int(sqlite_nio_sqlite3_column_bytes(stmt, c))
        return UnsafeRawBufferPointer(start: n > 0 ? p : nil, count: p == nil ? 0 : n)
    }

    public func value(_ col: Int) -> SQLiteValue {
        let c = Int32(col)
        switch sqlite_nio_sqlite3_column_type(stmt, c) {
        case SQLITE_INTEGER: return .integer(sqlite_nio_sqlite3_column_int64(stmt, c))
        case SQLITE_FLOAT: return .real(sqlite_nio_sqlite3_column_double(stmt, c))
        case SQLITE_TEXT:
            let p = sqlite_nio_sqlite3_column_text(stmt, c)!
            let n = Int(sqlite_nio_sqlite3_column_bytes(stmt, c))
            return .text(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
        case SQLITE_BLOB:
            let n = Int(sqlite_nio_sqlite3_column_bytes(stmt, c))
            guard n > 0, let p = sqlite_nio_sqlite3_column_blob(stmt, c) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: p, count: n)))
        default: return .null
        }
    }
}

extension SQLiteConnection {
    /// Runs a pipeline's `sql` steps inside the caller's open transaction.
    static func runSteps(_ steps: [String], on conn: SQLiteConnection) throws(SluiceError) {
        for (i, sql) in steps.enumerated() {
            do { try conn.execute(sql) } catch { throw CommitContext.sqlStepFailed(i, sql, error.message) }
        }
    }
}
