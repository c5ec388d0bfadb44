public import SluiceCore
public import NIOCore

/// Encodes batches in PostgreSQL's COPY text format (tab-separated, `\N` for NULL,
/// backslash escapes), for a staging table whose columns are the schema's columns then
/// the source line and the op. Values PostgreSQL cannot store — a NUL byte in text, a
/// `\u0000` in JSON — make their row a reject here, so COPY never fails on data.
public struct CopyEncoder: Sendable {
    let types: [ColumnType]
    let names: [String]
    var scratch: [UInt8] = []

    public init(schema: TableSchema) {
        types = schema.columns.map(\.type)
        names = schema.columns.map(\.name)
    }

    /// Encodes `batch` into `out`; returns the rows refused (with why).
    public mutating func encode(_ batch: RecordBatch, into out: inout ByteBuffer) -> [SinkReject] {
        var rejects: [SinkReject] = []
        for r in 0..<batch.count {
            let rowStart = out.writerIndex
            var refused: String? = nil
            for c in 0..<types.count {
                if c > 0 { out.writeInteger(UInt8(ascii: "\t")) }
                let col = batch.columns[c]
                if col.isNull(r) {
                    out.writeStaticString("\\N")
                    continue
                }
                switch types[c] {
                case .int64:
                    writeInt(col.ints[r], &out)
                case .bool:
                    out.writeInteger(col.ints[r] != 0 ? UInt8(ascii: "t") : UInt8(ascii: "f"))
                case .float64:
                    out.writeString(ValueText.double(col.doubles[r]))
                case .decimal:
                    scratch.removeAll(keepingCapacity: true)
                    col.decimals[r].write(into: &scratch)
                    out.writeBytes(scratch)
                case .date:
                    scratch.removeAll(keepingCapacity: true)
                    ValueText.date(days: col.ints[r], into: &scratch)
                    out.writeBytes(scratch)
                case .timestamp, .timestamptz:
                    scratch.removeAll(keepingCapacity: true)
                    ValueText.timestamp(micros: col.ints[r], utc: types[c] == .timestamptz, into: &scratch)
                    out.writeBytes(scratch)
                case .time:
                    scratch.removeAll(keepingCapacity: true)
                    ValueText.time(micros: col.ints[r], into: &scratch)
                    out.writeBytes(scratch)
                case .uuid:
                    scratch.removeAll(keepingCapacity: true)
                    ValueText.uuid(col.bytes(at: r), into: &scratch)
                    out.writeBytes(scratch)
                case .bytes:
                    // `\x...` with its backslash escaped for COPY's text format.
                    out.writeInteger(UInt8(ascii: "\\"))
                    scratch.removeAll(keepingCapacity: true)
                    ValueText.hexBytes(col.bytes(at: r), into: &scratch)
                    out.writeBytes(scratch)
                case .text, .json:
                    let bytes = col.bytes(at: r)
                    if bytes.contains(0) {
                        refused = "column '\(names[c])': PostgreSQL cannot store a NUL byte in text"
                    } else if types[c] == .json, bytes.count >= 6, containsEscapedNUL(bytes) {
                        refused = "column '\(names[c])': PostgreSQL jsonb cannot store \\u0000"
                    }
                    writeEscaped(bytes, &out)
                }
                if refused != nil { break }
            }
            if let refused {
                out.moveWriterIndex(to: rowStart)
                rejects.append(SinkReject(line: batch.lines[r], reason: refused, values: batch.columns.map { ValueText.render($0, r) }))
                continue
            }
            out.writeInteger(UInt8(ascii: "\t"))
            writeInt(batch.lines[r], &out)
            out.writeInteger(UInt8(ascii: "\t"))
            out.writeInteger(batch.ops[r] == .delete ? UInt8(ascii: "1") : UInt8(ascii: "0"))
            out.writeInteger(UInt8(ascii: "\n"))
        }
        return rejects
    }

    @inline(__always) func writeInt(_ v: Int64, _ out: inout ByteBuffer) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let n: Int = withUnsafeMutableBytes(of: &digits) { buf in
            var x = v.magnitude
            var i = buf.count
            repeat {
                i -= 1
                buf[i] = UInt8(48 + x % 10)
                x /= 10
            } while x > 0
            if v < 0 { i -= 1; buf[i] = UInt8(ascii: "-") }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: buf[i...]))
            return buf.count - i
        }
        _ = n
    }

    /// Text with COPY's escapes: backslash, tab, newline and carriage return.
    @inline(__always) func writeEscaped(_ bytes: ArraySlice<UInt8>, _ out: inout ByteBuffer) {
        var clean = true
        for b in bytes where b == 0x5C || b == 0x09 || b == 0x0A || b == 0x0D { clean = false; break }
        if clean {
            out.writeBytes(bytes)
            return
        }
        for b in bytes {
            switch b {
            case 0x5C: out.writeStaticString("\\\\")
            case 0x09: out.writeStaticString("\\t")
            case 0x0A: out.writeStaticString("\\n")
            case 0x0D: out.writeStaticString("\\r")
            default: out.writeInteger(b)
            }
        }
    }

    /// Whether canonical JSON text contains the escape `\u0000`.
    func containsEscapedNUL(_ b: ArraySlice<UInt8>) -> Bool {
        let pattern = Array("\\u0000".utf8)
        var i = b.startIndex
        while i + 6 <= b.endIndex {
            if b[i] == 0x5C && b[i..<(i + 6)].elementsEqual(pattern) {
                // An escaped backslash before it makes it text, not an escape.
                var slashes = 0
                var k = i - 1
                while k >= b.startIndex && b[k] == 0x5C { slashes += 1; k -= 1 }
                if slashes % 2 == 0 { return true }
            }
            i += 1
        }
        return false
    }
}
