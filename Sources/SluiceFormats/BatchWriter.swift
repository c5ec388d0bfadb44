public import SluiceCore
import Foundation

/// Where a writer's bytes go: a file, a buffer, an upload. Writers hand over large
/// chunks, so an implementation need not buffer.
public protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws(SluiceError)
}

extension ByteSink {
    public func write(_ bytes: [UInt8]) throws(SluiceError) {
        try bytes.withBytes { (b) throws(SluiceError) in try write(b) }
    }
}

/// Collects written bytes in memory (tests, small outputs).
public final class MemorySink: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public func write(_ b: UnsafeRawBufferPointer) throws(SluiceError) { bytes.append(contentsOf: b) }
}

/// Writes batches of one schema in some file format. ``finish()`` completes the file
/// (a footer, a last block); a file not finished is not valid.
public protocol BatchWriter: AnyObject {
    /// Rows written so far.
    var rowsWritten: Int64 { get }
    func write(_ batch: RecordBatch) throws(SluiceError)
    func finish() throws(SluiceError)
}

/// Writes batches as CSV with a header line, each value in its canonical text form.
public final class CSVBatchWriter: BatchWriter {
    let sink: any ByteSink
    var writer: CSVWriter
    public private(set) var rowsWritten: Int64 = 0

    public init(sink: any ByteSink, schema: TableSchema, dialect: CSVDialect = CSVDialect()) throws(SluiceError) {
        self.sink = sink
        writer = CSVWriter(dialect: dialect)
        if dialect.header { writer.writeRecord(schema.columns.map(\.name)) }
    }

    public func write(_ batch: RecordBatch) throws(SluiceError) {
        for i in 0..<batch.count { writer.writeRow(batch, i) }
        rowsWritten += Int64(batch.count)
        try sink.write(writer.output)
        writer.reset()
    }

    public func finish() throws(SluiceError) {
        try sink.write(writer.output)
        writer.reset()
    }
}

/// Writes batches as NDJSON: one object per row, keys in column order, values as
/// ``ValueText/json(_:_:into:)`` renders them.
public final class NDJSONBatchWriter: BatchWriter {
    let sink: any ByteSink
    let keys: [[UInt8]]
    var out: [UInt8] = []
    public private(set) var rowsWritten: Int64 = 0
    /// Decimals as JSON strings (`"12345678901234567890.12"`), which JSON readers keep exact;
    /// as numbers they become doubles in most readers.
    let decimalsAsStrings: Bool

    public init(sink: any ByteSink, schema: TableSchema, decimalsAsStrings: Bool = false) {
        self.sink = sink
        self.decimalsAsStrings = decimalsAsStrings
        keys = schema.columns.map { c in
            var k: [UInt8] = []
            JSONValue.writeString(bytes: c.name.utf8, into: &k)
            k.append(UInt8(ascii: ":"))
            return k
        }
    }

    public func write(_ batch: RecordBatch) throws(SluiceError) {
        batch.columns.withUnsafeBufferPointer { cols in
            for i in 0..<batch.count {
                out.append(UInt8(ascii: "{"))
                for c in cols.indices {
                    if c > 0 { out.append(UInt8(ascii: ",")) }
                    out += keys[c]
                    if decimalsAsStrings, cols[c].type.isDecimal, !cols[c].isNull(i) {
                        out.append(UInt8(ascii: "\""))
                        cols[c].decimals[i].write(into: &out)
                        out.append(UInt8(ascii: "\""))
                    } else {
                        ValueText.json(cols[c], i, into: &out)
                    }
                }
                out.append(contentsOf: "}\n".utf8)
            }
        }
        rowsWritten += Int64(batch.count)
        try sink.write(out)
        out.removeAll(keepingCapacity: true)
    }

    public func finish() throws(SluiceError) {}
}

/// Writes to a temporary file beside `path` and renames it into place on ``commit()``,
/// so a reader never sees half a file and a failed write leaves nothing behind.
public final class FileSink: ByteSink {
    let fd: Int32
    public let path: String
    let temp: String
    var done = false

    public init(path: String) throws(SluiceError) {
        self.path = path
        temp = path + ".sluice-partial-\(getpid())"
        fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw SluiceError(.io, "cannot create: \(String(cString: strerror(errno)))", at: SourceLocation(file: path)) }
    }

    deinit {
        if !done {
            close(fd)
            unlink(temp)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) {
        var at = 0
        while at < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + at, bytes.count - at)
            if n > 0 { at += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw SluiceError(.io, "write failed: \(String(cString: strerror(errno)))", at: SourceLocation(file: path))
        }
    }

    /// Flushes to disk and moves the file into place.
    public func commit() throws(SluiceError) {
        guard !done else { return }
        done = true
        let ok = fsync(fd) == 0
        close(fd)
        guard ok, rename(temp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw SluiceError(.io, "cannot finish the file: \(reason)", at: SourceLocation(file: path))
        }
    }
}
