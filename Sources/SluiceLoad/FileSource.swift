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

/// One input file: where it is, how big, whether it is gzip, and its format.
public struct InputFile: Sendable {
    public var path: String
    public var size: Int64
    public var gzip: Bool
    public var format: SourceFormat

    /// Looks at the name and the first bytes: gzip by its magic number, the format by the
    /// extension or, failing that, by whether the content starts with `{` or `[`.
    public static func inspect(path: String, format explicit: SourceFormat?) throws(SluiceError) -> InputFile {
        var reader = try FileChunkReader(path: path)
        let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { probe.deallocate() }
        let n = try reader.read(into: probe)
        let head = Array(probe[0..<n])
        let gz = looksGzipped(head)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? nil
        var format = explicit ?? SourceFormat.detect(fromName: path)
        if format == nil {
            var content = head
            if gz {
                var g = try GzipChunkReader(try FileChunkReader(path: path))
                let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
                defer { buf.deallocate() }
                let m = (try? g.read(into: buf)) ?? 0
                content = Array(buf[0..<m])
            }
            let first = content.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 && $0 != 0xEF && $0 != 0xBB && $0 != 0xBF }
            format = (first == UInt8(ascii: "{") || first == UInt8(ascii: "[")) ? .json : .csv
        }
        return InputFile(path: path, size: size ?? 0, gzip: gz, format: format!)
    }

    /// A fresh byte stream of the (decompressed) content, or of one byte range of it.
    public func open(progress: LoadProgress? = nil, range: Range<Int64>? = nil) throws(SluiceError) -> any ByteChunkReader {
        let raw = try FileChunkReader(path: path, progress: progress, range: range)
        return gzip ? try GzipChunkReader(raw) : raw
    }

    /// A batch reader of this file (or of `range` of it) for `spec`.
    public func reader(spec: ReadSpec, dialect: CSVDialect, progress: LoadProgress? = nil, range: Range<Int64>? = nil) throws(SluiceError) -> any BatchReader {
        let source = try open(progress: progress, range: range)
        switch format {
        case .csv: return try CSVBatchReader(source: source, dialect: dialect, spec: spec)
        case .ndjson: return JSONBatchReader(source: source, layout: .lines, spec: spec)
        case .json: return JSONBatchReader(source: source, layout: .detect, spec: spec)
        }
    }
}
