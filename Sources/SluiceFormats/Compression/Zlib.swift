public import SluiceCore
import CCompressZlib

/// One-shot zlib calls for block formats (Parquet GZIP pages, Avro deflate blocks).
public enum Zlib {
    public enum Framing: Sendable {
        /// gzip or zlib header, detected.
        case gzipOrZlib
        /// Raw deflate, no header (Avro's `deflate` codec).
        case raw
        var windowBits: Int32 { self == .raw ? -15 : 15 + 32 }
    }

    /// Inflates `src` into exactly `dst.count` bytes.
    public static func inflate(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, framing: Framing) throws(SluiceError) {
        var out: [UInt8] = []
        let n = try inflate(src, framing: framing, limit: dst.count, into: &out)
        guard n == dst.count else { throw SluiceError(.malformedFile, "\(framing == .raw ? "deflate" : "gzip") data holds \(n) bytes, expected \(dst.count)") }
        out.withUnsafeBytes { dst.copyMemory(from: $0) }
    }

    /// Inflates `src` (all of it) into `out`, refusing to produce more than `limit` bytes.
    @discardableResult
    public static func inflate(_ src: UnsafeRawBufferPointer, framing: Framing, limit: Int, into out: inout [UInt8]) throws(SluiceError) -> Int {
        var z = z_stream()
        guard CCompressZlib_inflateInit2(&z, framing.windowBits) == Z_OK else { throw SluiceError(.io, "cannot start zlib") }
        defer { inflateEnd(&z) }
        out.removeAll(keepingCapacity: true)
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        z.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
        z.avail_in = UInt32(src.count)
        while true {
            let rc: Int32 = chunk.withUnsafeMutableBytes { c in
                z.next_out = c.baseAddress!.assumingMemoryBound(to: Bytef.self)
                z.avail_out = UInt32(c.count)
                return CCompressZlib.inflate(&z, Z_NO_FLUSH)
            }
            let produced = chunk.count - Int(z.avail_out)
            guard out.count + produced <= limit else { throw SluiceError(.malformedFile, "compressed data inflates past \(limit) bytes") }
            out.append(contentsOf: chunk[0..<produced])
            switch rc {
            case Z_STREAM_END:
                return out.count
            case Z_OK:
                continue
            case Z_BUF_ERROR where z.avail_in == 0:
                throw SluiceError(.malformedFile, "compressed data is truncated")
            case Z_BUF_ERROR:
                continue
            default:
                throw SluiceError(.malformedFile, "corrupt compressed data (zlib error \(rc))")
            }
        }
    }

    /// Deflates `src`, appending to `out` (gzip framing for Parquet, raw for Avro).
    public static func deflate(_ src: UnsafeRawBufferPointer, framing: Framing, level: Int32 = 6, into out: inout [UInt8]) throws(SluiceError) {
        var z = z_stream()
        let bits: Int32 = framing == .raw ? -15 : 15 + 16
        guard CCompressZlib_deflateInit2(&z, level, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) == Z_OK else { throw SluiceError(.io, "cannot start zlib") }
        defer { deflateEnd(&z) }
        z.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
        z.avail_in = UInt32(src.count)
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let rc: Int32 = chunk.withUnsafeMutableBytes { c in
                z.next_out = c.baseAddress!.assumingMemoryBound(to: Bytef.self)
                z.avail_out = UInt32(c.count)
                return CCompressZlib.deflate(&z, Z_FINISH)
            }
            out.append(contentsOf: chunk[0..<(chunk.count - Int(z.avail_out))])
            if rc == Z_STREAM_END { return }
            guard rc == Z_OK || rc == Z_BUF_ERROR else { throw SluiceError(.io, "zlib deflate failed (\(rc))") }
        }
    }

    /// CRC-32 (the gzip polynomial), as Avro's snappy blocks and Parquet page checksums use.
    public static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(CCompressZlib.crc32(0, bytes.baseAddress?.assumingMemoryBound(to: Bytef.self), UInt32(bytes.count)))
    }
}
