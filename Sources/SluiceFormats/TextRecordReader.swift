public import SluiceCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads text as records of one or more lines (``TextRecords``), streaming: a record's lines
/// joined by `\n` (a CR before a line end dropped), with the number of its first line.
/// Memory holds one record; a record over `maxRecordBytes` is a file error naming its line.
public struct TextRecordReader {
    var source: any ByteChunkReader
    let records: TextRecords
    let maxRecordBytes: Int
    let fileName: String?
    var buffer: [UInt8] = []
    var at = 0
    var ended = false
    var line: Int64 = 0
    /// A line read ahead (it starts the next record): its bytes in `buffer` (left in place
    /// until the next call reads on) and its number.
    var pending: (Range<Int>, Int64)? = nil
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)
    /// The record being put together (kept from record to record for its capacity).
    var text: [UInt8] = []
    /// The bytes a `startsWith` record opens with (made once, not per record).
    let marker: [UInt8]

    public init(source: any ByteChunkReader, records: TextRecords, maxRecordBytes: Int = ReadLimits().maxRecordBytes, fileName: String? = nil) {
        self.source = source
        self.records = records
        self.maxRecordBytes = maxRecordBytes
        self.fileName = fileName
        if case .startsWith(let prefix) = records { marker = Array(prefix.utf8) } else { marker = [] }
    }

    /// Frees the read buffer (the reader is not usable afterwards).
    public func close() { chunk.deallocate() }

    /// The next line as it is, blank or not (for a look at the file's shape).
    public mutating func nextRaw() throws(SluiceError) -> ([UInt8], Int64)? {
        guard let (r, n) = try nextLine() else { return nil }
        return (Array(buffer[r]), n)
    }

    /// The next line without its end (its bytes in `buffer`, valid until the next call), or
    /// nil at the end of the text.
    mutating func nextLine() throws(SluiceError) -> (Range<Int>, Int64)? {
        if let p = pending { pending = nil; return p }
        while true {
            let nl = buffer.withUnsafeBufferPointer { b -> Int? in
                guard at < b.count, let base = b.baseAddress, let hit = memchr(base + at, 0x0A, b.count - at) else { return nil }
                return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            }
            if let nl {
                var end = nl
                if end > at, buffer[end - 1] == 0x0D { end -= 1 }
                let line = at..<end
                at = nl + 1
                self.line += 1
                return (line, self.line)
            }
            if ended {
                guard at < buffer.count else { return nil }
                var end = buffer.count
                if buffer[end - 1] == 0x0D { end -= 1 }
                let line = at..<end
                at = buffer.count
                self.line += 1
                return (line, self.line)
            }
            if buffer.count - at > maxRecordBytes {
                throw SluiceError(.recordTooLong, "a line is longer than \(maxRecordBytes) bytes", at: SourceLocation(file: fileName, line: line + 1))
            }
            if at > 0 { buffer.removeFirst(at); at = 0 }
            let n = try source.read(into: chunk)
            if n == 0 { ended = true } else { buffer += chunk[0..<n] }
        }
    }

    /// Whether the bytes at `r` start with `p` (a byte compare; the generic `starts(with:)`
    /// over a String's UTF-8 view took a tenth of reading a grouped file).
    static func hasPrefix(_ buffer: [UInt8], _ r: Range<Int>, _ p: [UInt8]) -> Bool {
        guard !p.isEmpty else { return true }
        guard r.count >= p.count else { return false }
        return buffer.withUnsafeBufferPointer { b in p.withUnsafeBufferPointer { q in memcmp(b.baseAddress! + r.lowerBound, q.baseAddress!, q.count) == 0 } }
    }

    func blank(_ r: Range<Int>) -> Bool { buffer[r].allSatisfy { $0 == 0x20 || $0 == 0x09 } }

    /// The next record and the number of its first line, or nil at the end.
    public mutating func next() throws(SluiceError) -> (text: [UInt8], line: Int64)? {
        guard let start = try nextRecord() else { return nil }
        return (text, start)
    }

    /// Reads the next record into `text`; the number of its first line, or nil at the end.
    mutating func nextRecord() throws(SluiceError) -> Int64? {
        var record: [UInt8] = []
        swap(&record, &text)  // its room, kept from record to record
        defer { swap(&record, &text) }
        record.removeAll(keepingCapacity: true)
        return try appendRecord(to: &record)
    }

    /// Appends the next record's bytes to `out` (records one after another in one buffer,
    /// with no copy in between); the number of its first line, or nil at the end.
    public mutating func appendRecord(to out: inout [UInt8]) throws(SluiceError) -> Int64? {
        // Blank lines separate records (or are skipped); they never start one.
        var first: (Range<Int>, Int64)? = nil
        while let l = try nextLine() {
            if !blank(l.0) { first = l; break }
        }
        guard let (firstLine, start) = first else { return nil }
        let from = out.count
        // Through the buffer's memory: a slice of it is a retain and a release per line.
        buffer.withUnsafeBufferPointer { out.append(contentsOf: UnsafeBufferPointer(rebasing: $0[firstLine])) }
        var count = 1
        func append(_ l: Range<Int>) throws(SluiceError) {
            out.append(0x0A)
            buffer.withUnsafeBufferPointer { out.append(contentsOf: UnsafeBufferPointer(rebasing: $0[l])) }
            if out.count - from > maxRecordBytes {
                throw SluiceError(.recordTooLong, "a record is longer than \(maxRecordBytes) bytes", at: SourceLocation(file: fileName, line: start))
            }
        }
        switch records {
        case .line:
            break
        case .lines(let n):
            while count < n, let l = try nextLine() {
                if blank(l.0) { continue }
                try append(l.0)
                count += 1
            }
        case .blankLine:
            while let l = try nextLine() {
                if blank(l.0) { break }
                try append(l.0)
            }
        case .startsWith:
            while let l = try nextLine() {
                if Self.hasPrefix(buffer, l.0, marker) { pending = l; break }
                if blank(l.0) { continue }
                try append(l.0)
            }
        }
        return start
    }
}

/// Loads text records (``TextRecordReader``) as rows whose columns read the field `line`:
/// the record's text (its lines joined by `\n`), on the line where the record starts.
public final class TextBatchReader: BatchReader {
    var records: TextRecordReader
    let spec: ReadSpec
    var builder: BatchBuilder
    /// Columns that read the record (every other column is NULL).
    let lineColumns: Set<Int>
    public private(set) var bytesConsumed: Int64 = 0
    public var sourceFields: [String] { ["line"] }
    public var unusedFields: [String] { lineColumns.isEmpty ? ["line"] : [] }
    public var rejectFields: [String] { ["line"] }

    public init(source: any ByteChunkReader, records: TextRecords, spec: ReadSpec) {
        self.records = TextRecordReader(source: source, records: records, maxRecordBytes: spec.limits.maxRecordBytes, fileName: spec.fileName)
        self.spec = spec
        builder = BatchBuilder(schema: spec.schema, capacity: spec.limits.batchRows)
        lineColumns = Set(spec.schema.columns.indices.filter { spec.schema.columns[$0].sourceField == "line" })
    }

    deinit { records.close() }

    public func sourceRecord(columnValues: [String?]) -> [String?] {
        [lineColumns.min().flatMap { columnValues[$0] }]
    }

    public func next() throws(SluiceError) -> DecodedBatch? {
        var rejects: [RowReject] = []
        while builder.count + rejects.count < spec.limits.batchRows, let (text, line) = try records.next() {
            bytesConsumed += Int64(text.count + 1)
            builder.beginRow(line: line)
            for c in spec.schema.columns.indices where lineColumns.contains(c) { text.withUnsafeBytes { builder.setText(c, $0) } }
            if var reject = builder.endRow() {
                reject.fields = [String(decoding: text, as: UTF8.self)]
                rejects.append(reject)
            }
        }
        if builder.count == 0 && rejects.isEmpty { return nil }
        return DecodedBatch(batch: builder.take(), rejects: rejects)
    }
}
