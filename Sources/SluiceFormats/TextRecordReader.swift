public import SluiceCore

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
    /// A line read ahead (it starts the next record), with its number.
    var pending: ([UInt8], Int64)? = nil
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)

    public init(source: any ByteChunkReader, records: TextRecords, maxRecordBytes: Int = ReadLimits().maxRecordBytes, fileName: String? = nil) {
        self.source = source
        self.records = records
        self.maxRecordBytes = maxRecordBytes
        self.fileName = fileName
    }

    /// Frees the read buffer (the reader is not usable afterwards).
    public func close() { chunk.deallocate() }

    /// The next line as it is, blank or not (for a look at the file's shape).
    public mutating func nextRaw() throws(SluiceError) -> ([UInt8], Int64)? { try nextLine() }

    /// The next line without its end, or nil at the end of the text.
    mutating func nextLine() throws(SluiceError) -> ([UInt8], Int64)? {
        if let p = pending { pending = nil; return p }
        while true {
            if let nl = buffer[at...].firstIndex(of: 0x0A) {
                var end = nl
                if end > at, buffer[end - 1] == 0x0D { end -= 1 }
                let text = Array(buffer[at..<end])
                at = nl + 1
                line += 1
                return (text, line)
            }
            if ended {
                guard at < buffer.count else { return nil }
                var text = Array(buffer[at...])
                if text.last == 0x0D { text.removeLast() }
                at = buffer.count
                line += 1
                return (text, line)
            }
            if buffer.count - at > maxRecordBytes {
                throw SluiceError(.recordTooLong, "a line is longer than \(maxRecordBytes) bytes", at: SourceLocation(file: fileName, line: line + 1))
            }
            if at > 0 { buffer.removeFirst(at); at = 0 }
            let n = try source.read(into: chunk)
            if n == 0 { ended = true } else { buffer += chunk[0..<n] }
        }
    }

    static func blank(_ l: [UInt8]) -> Bool { l.allSatisfy { $0 == 0x20 || $0 == 0x09 } }

    /// The next record and the number of its first line, or nil at the end.
    public mutating func next() throws(SluiceError) -> (text: [UInt8], line: Int64)? {
        // Blank lines separate records (or are skipped); they never start one.
        var first: ([UInt8], Int64)? = nil
        while let l = try nextLine() {
            if !Self.blank(l.0) { first = l; break }
        }
        guard var (text, start) = first else { return nil }
        var count = 1
        func append(_ l: [UInt8]) throws(SluiceError) {
            text.append(0x0A)
            text += l
            if text.count > maxRecordBytes {
                throw SluiceError(.recordTooLong, "a record is longer than \(maxRecordBytes) bytes", at: SourceLocation(file: fileName, line: start))
            }
        }
        switch records {
        case .line:
            break
        case .lines(let n):
            while count < n, let l = try nextLine() {
                if Self.blank(l.0) { continue }
                try append(l.0)
                count += 1
            }
        case .blankLine:
            while let l = try nextLine() {
                if Self.blank(l.0) { break }
                try append(l.0)
            }
        case .startsWith(let prefix):
            let p = Array(prefix.utf8)
            while let l = try nextLine() {
                if l.0.starts(with: p) { pending = l; break }
                if Self.blank(l.0) { continue }
                try append(l.0)
            }
        }
        return (text, start)
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
