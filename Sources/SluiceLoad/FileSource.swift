public import SluiceCore
public import SluiceFormats
import Foundation
import Synchronization

/// Counters shared between the thread that reads and the one that reports progress.
public final class LoadProgress: Sendable {
    let bytesRead = Atomic<Int64>(0)
    let rowsRead = Atomic<Int64>(0)
    public init() {}
    public var bytes: Int64 { bytesRead.load(ordering: .relaxed) }
    public var rows: Int64 { rowsRead.load(ordering: .relaxed) }
    func add(bytes n: Int64) { bytesRead.add(n, ordering: .relaxed) }
    func add(rows n: Int64) { rowsRead.add(n, ordering: .relaxed) }
}

/// Reads a local file with plain `read(2)` calls, counting bytes for progress.
public struct FileChunkReader: ByteChunkReader {
    let handle: FileHandleBox
    let path: String
    let progress: LoadProgress?
    /// Bytes left to read when reading a range (nil: to the end of the file).
    var remaining: Int64?

    /// Owns the file descriptor so it is closed exactly once.
    final class FileHandleBox {
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    /// Reads `path`, or only `range` of it (byte offsets) when given.
    public init(path: String, progress: LoadProgress? = nil, range: Range<Int64>? = nil) throws(SluiceError) {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            throw SluiceError(errno == ENOENT ? .notFound : .io, "cannot open: \(String(cString: strerror(errno)))", at: SourceLocation(file: path))
        }
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw SluiceError(.io, "is a directory, not a file", at: SourceLocation(file: path))
        }
        handle = FileHandleBox(fd: fd)
        self.path = path
        self.progress = progress
        if let range {
            guard lseek(fd, off_t(range.lowerBound), SEEK_SET) == off_t(range.lowerBound) else {
                throw SluiceError(.io, "cannot seek to byte \(range.lowerBound)", at: SourceLocation(file: path))
            }
            remaining = range.upperBound - range.lowerBound
        }
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int {
        let want = remaining.map { Int(min(Int64(buffer.count), $0)) } ?? buffer.count
        if want == 0 { return 0 }
        while true {
            let n = Foundation.read(handle.fd, buffer.baseAddress, want)
            if n >= 0 {
                progress?.add(bytes: Int64(n))
                if let r = remaining { remaining = r - Int64(n) }
                return n
            }
            if errno == EINTR { continue }
            throw SluiceError(.io, "read failed: \(String(cString: strerror(errno)))", at: SourceLocation(file: path))
        }
    }
}

/// A local file read at offsets with `pread(2)` (Parquet footers and column chunks),
/// counting bytes for progress.
public final class FileRandomAccess: RandomAccessSource {
    let fd: Int32
    let path: String
    let progress: LoadProgress?
    public let size: Int64

    public init(path: String, progress: LoadProgress? = nil) throws(SluiceError) {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            throw SluiceError(errno == ENOENT ? .notFound : .io, "cannot open: \(String(cString: strerror(errno)))", at: SourceLocation(file: path))
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw SluiceError(.io, "is not a regular file", at: SourceLocation(file: path))
        }
        self.fd = fd
        self.path = path
        self.progress = progress
        self.size = Int64(st.st_size)
    }

    deinit { close(fd) }

    public func read(at offset: Int64, count: Int) throws(SluiceError) -> [UInt8] {
        guard offset >= 0, count >= 0, count <= size - offset else {
            throw SluiceError(.malformedFile, "a read of \(count) bytes at \(offset) runs past the end of the \(size)-byte file", at: SourceLocation(file: path))
        }
        var out = [UInt8](unsafeUninitializedCapacity: count) { _, n in n = count }  // filled below, or it throws
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw SluiceError(.io, n == 0 ? "the file shrank while being read" : "read failed: \(String(cString: strerror(errno)))", at: SourceLocation(file: path))
        }
        progress?.add(bytes: Int64(count))
        return out
    }
}

/// One input file: where it is, how big, whether it is gzip, and its format.
public struct InputFile: Sendable {
    public var path: String
    public var size: Int64
    public var gzip: Bool
    public var format: SourceFormat
    /// Rows handed over by a pipeline instead of a file's content.
    public var feed: RowFeed?
    /// The delimiter the name or first bytes of a CSV file show (``CSVDialect/sniff``).
    public var sniffedDelimiter: UInt8?
    /// Windows-1252 when a CSV file's first bytes are not UTF-8 (Excel on Western systems).
    public var sniffedEncoding: SingleByteEncoding?
    /// UTF-16 text (by its byte-order mark): big endian or not; read as UTF-8 whatever the
    /// dialect says.
    public var utf16BigEndian: Bool?
    /// The table and version read, for a Delta table.
    public var delta: DeltaInput?

    public init(path: String, size: Int64, gzip: Bool, format: SourceFormat) {
        self.path = path
        self.size = size
        self.gzip = gzip
        self.format = format
    }

    /// The rows of `feed` as one input (named after it in messages).
    public init(feed: RowFeed) {
        self.init(path: feed.name, size: 0, gzip: false, format: .csv)
        self.feed = feed
    }

    /// Looks at the name and the first bytes: gzip by its magic number, Parquet and Avro by
    /// theirs, else the format by the extension or by whether the content starts with `{` or `[`.
    public static func inspect(path: String, format explicit: SourceFormat?) throws(SluiceError) -> InputFile {
        if explicit == nil || explicit == .delta, let table = try DeltaLocation.open(explicit == .delta && !path.hasPrefix("delta:") ? "delta:" + path : path) {
            return InputFile(delta: table)
        }
        var reader = try FileChunkReader(path: path)
        let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { probe.deallocate() }
        let n = try reader.read(into: probe)
        let head = Array(probe[0..<n])
        let gz = looksGzipped(head)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? nil
        var format = explicit ?? SourceFormat.detect(magic: head) ?? SourceFormat.detect(fromName: path)
        var content = head
        let utf16 = gz ? nil : UTF16ChunkReader.byteOrderMark(head)
        if let be = utf16 {
            // Judge the text as it will be read: its first bytes as UTF-8.
            var t = UTF16ChunkReader(MemoryChunkReader(Array(head.dropFirst(2).prefix(head.count - 2 - (head.count % 2)))), bigEndian: be)
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 1)
            defer { buf.deallocate() }
            var out: [UInt8] = []
            while let m = try? t.read(into: buf), m > 0 { out += buf[0..<m] }
            content = out
        }
        if gz && (format == nil || format == .csv) {
            var g = try GzipChunkReader(try FileChunkReader(path: path))
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
            defer { buf.deallocate() }
            let m = (try? g.read(into: buf)) ?? 0
            content = Array(buf[0..<m])
        }
        if format == nil {
            let first = content.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 && $0 != 0xEF && $0 != 0xBB && $0 != 0xBF }
            format = (first == UInt8(ascii: "{") || first == UInt8(ascii: "[")) ? .json : .csv
        }
        if format!.isBinary && gz {
            throw SluiceError(.unsupported, "a gzip-compressed \(format!.rawValue) file cannot be read; \(format!.rawValue) compresses its own data, so load it uncompressed",
                              at: SourceLocation(file: path))
        }
        if explicit == nil, format == .csv, Self.isTextRecords(head: content, name: path) { format = .text }
        var file = InputFile(path: path, size: size ?? 0, gzip: gz, format: format!)
        file.utf16BigEndian = format!.isBinary ? nil : utf16
        if format == .csv {
            file.sniffedDelimiter = CSVDialect.sniff(head: content, fileName: path)
            if utf16 == nil, SingleByteEncoding.notUTF8(content) { file.sniffedEncoding = .windows1252 }
        }
        return file
    }

    /// Whether a file named `name` (by its name a CSV) is text records: a `.txt` whose first
    /// lines show no delimiter, or whose first line lacks the one the others show (a report,
    /// seed 004's coordinates, even a single record of them). Excel's tab-separated `.txt`
    /// stays CSV. The one rule for loads and pipelines.
    static func isTextRecords(head: some Collection<UInt8>, name: String) -> Bool {
        guard name.lowercased().hasSuffix(".txt") else { return false }
        guard let delimiter = CSVDialect.sniff(head: head, fileName: name) else { return true }
        // A CSV's header names its columns between delimiters.
        let first = head.drop { $0 == 0x0A || $0 == 0x0D }.prefix { $0 != 0x0A }
        return !first.contains(delimiter)
    }

    /// A fresh byte stream of the (decompressed) content, or of one byte range of it, as
    /// UTF-8 when the text is in a single-byte `encoding`.
    public func open(progress: LoadProgress? = nil, range: Range<Int64>? = nil, encoding: SingleByteEncoding? = nil) throws(SluiceError) -> any ByteChunkReader {
        if utf16BigEndian != nil {
            guard range == nil else { throw SluiceError(.unsupported, "a UTF-16 file is read whole, not in chunks", at: SourceLocation(file: path)) }
            return try UTF16ChunkReader.utf8(try FileChunkReader(path: path, progress: progress)) { () throws(SluiceError) in try FileChunkReader(path: path, progress: progress) }
        }
        let raw = try FileChunkReader(path: path, progress: progress, range: range)
        let bytes: any ByteChunkReader = gzip ? try GzipChunkReader(raw) : raw
        return encoding.map { TranscodingChunkReader(bytes, encoding: $0) } ?? bytes
    }

    /// A batch reader of this file (or of `range` of it) for `spec`.
    public func reader(spec: ReadSpec, dialect: CSVDialect, progress: LoadProgress? = nil, range: Range<Int64>? = nil) throws(SluiceError) -> any BatchReader {
        if let feed { return try RowBatchReader(feed: feed, spec: spec) }
        if let delta { return try DeltaBatchReader(storage: delta.storage, snapshot: delta.snapshot, spec: spec) }
        if format.isBinary && range != nil {
            throw SluiceError(.unsupported, "a \(format.rawValue) file cannot be read in byte ranges", at: SourceLocation(file: path))
        }
        switch format {
        case .csv: return try CSVBatchReader(source: try open(progress: progress, range: range, encoding: dialect.encoding), dialect: dialect, spec: spec)
        case .ndjson: return JSONBatchReader(source: try open(progress: progress, range: range), layout: .lines, spec: spec)
        case .json: return JSONBatchReader(source: try open(progress: progress, range: range), layout: .detect, spec: spec)
        case .parquet:
            return try ParquetBatchReader(file: try ParquetFile(source: try FileRandomAccess(path: path, progress: progress), fileName: path), spec: spec)
        case .avro:
            return try AvroBatchReader(source: try open(progress: progress), spec: spec)
        case .text:
            guard range == nil else { throw SluiceError(.unsupported, "a text file's records are read whole, not in chunks", at: SourceLocation(file: path)) }
            return TextBatchReader(source: try open(progress: progress), records: spec.textRecords, spec: spec)
        case .delta:
            throw SluiceError(.invalidArgument, "is not a Delta table (no _delta_log folder)", at: SourceLocation(file: path))
        }
    }

    /// What a CSV file's first `rows` records show of `dd/mm/yyyy` dates (nil for others).
    public func sniffDates(dialect: CSVDialect, rows: Int, limits: ReadLimits) throws(SluiceError) -> SchemaSampler.DateSniff? {
        guard feed == nil, format == .csv else { return nil }
        return try SchemaSampler.sniffDates(source: try open(encoding: dialect.encoding), dialect: dialect, rows: rows, limits: limits, fileName: path)
    }

    /// The columns of this file: from its own schema for Parquet and Avro, else inferred
    /// from a sample of `rows` records. `exclude` names fields that are not columns.
    public func inferColumns(dialect: CSVDialect, rows: Int, exclude: Set<String>, limits: ReadLimits) throws(SluiceError) -> [ColumnSchema] {
        if let feed {
            return try SchemaSampler.infer(source: MemoryChunkReader(feed.sampleCSV()), format: .csv, rows: rows, exclude: exclude, limits: limits, fileName: path)
        }
        if let delta { return try delta.snapshot.columns().filter { !exclude.contains($0.name) } }
        switch format {
        case .parquet:
            let file = try ParquetFile(source: try FileRandomAccess(path: path), fileName: path)
            return file.schema.columns.filter { !exclude.contains($0.name) }
        case .avro:
            let file = try AvroReader(source: try open(), fileName: path)
            return file.columns.filter { !exclude.contains($0.name) }
        default:
            return try SchemaSampler.infer(source: try open(encoding: format == .csv ? dialect.encoding : nil), format: format, dialect: dialect, rows: rows,
                                           exclude: exclude, limits: limits, fileName: path)
        }
    }
}
