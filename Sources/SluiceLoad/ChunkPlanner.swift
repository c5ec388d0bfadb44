public import SluiceCore
import SluiceFormats
import Foundation

/// Splits a big CSV or NDJSON file into line-aligned byte ranges that several workers can
/// load at once. Each chunk knows its first line number (so positions and rejects stay true
/// to the whole file) and, for CSV, the file's header.
///
/// Splitting at newlines is only right when no record contains a newline; a file whose
/// first megabyte has a quoted newline is not split (nil).
public enum ChunkPlanner {
    public static func split(_ file: InputFile, dialect: CSVDialect, chunkBytes: Int64) throws(SluiceError) -> [FileChunk]? {
        guard !file.gzip, file.utf16BigEndian == nil, file.format == .csv || file.format == .ndjson, chunkBytes > 0, file.size > chunkBytes else { return nil }
        var header: [String]? = nil
        var dataStart: Int64 = 0
        var firstDataLine: Int64 = 1
        if file.format == .csv {
            let decoder = CSVDecoder(source: try FileChunkReader(path: file.path, range: 0..<min(file.size, 1 << 20)), dialect: dialect,
                                     maxRecordBytes: 1 << 20, fileName: file.path)
            if dialect.header {
                guard case .record = try decoder.next() else { return nil }
                header = decoder.fieldStrings().map { $0 ?? "" }
                dataStart = decoder.bytesConsumed
                firstDataLine = decoder.line + 1
            }
            // A record spanning lines in the sample means line boundaries are not record boundaries.
            var records = 0
            while records < 10_000 {
                let before = decoder.line
                guard case .record = try decoder.next() else { break }
                if decoder.line > before + 1 && records > 0 { return nil }
                records += 1
            }
            if decoder.line - firstDataLine + 1 > Int64(records) + 1 { return nil }
        }
        // One pass: find a newline past each nominal boundary and count lines up to it.
        var chunks: [FileChunk] = []
        var reader = try FileChunkReader(path: file.path, range: dataStart..<file.size)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        var offset = dataStart
        var line = firstDataLine
        var chunkStart = dataStart
        var chunkLine = firstDataLine
        var nextCut = dataStart + chunkBytes
        var endsWithNewline = false
        while true {
            let n = try reader.read(into: buf)
            if n == 0 { break }
            var i = 0
            while i < n {
                guard let hit = memchr(buf.baseAddress! + i, 0x0A, n - i) else { break }
                let at = buf.baseAddress!.distance(to: hit)
                line += 1
                let lineEnd = offset + Int64(at) + 1
                if lineEnd >= nextCut && lineEnd < file.size {
                    chunks.append(FileChunk(start: chunkStart, end: lineEnd, firstLine: chunkLine, endLine: line, header: header))
                    chunkStart = lineEnd
                    chunkLine = line
                    nextCut = lineEnd + chunkBytes
                }
                i = at + 1
            }
            offset += Int64(n)
            endsWithNewline = buf[n - 1] == 0x0A
        }
        chunks.append(FileChunk(start: chunkStart, end: file.size, firstLine: chunkLine, endLine: endsWithNewline ? line : line + 1, header: header))
        return chunks.count > 1 ? chunks : nil
    }
}
