public import SluiceCore

/// LZ4's block format (Parquet's LZ4_RAW codec, and the blocks inside Hadoop's LZ4
/// framing that the deprecated LZ4 codec uses), decoded with every length checked.
public enum LZ4 {
    /// Decodes one block into `dst[at...]`; returns the bytes written.
    public static func decompressBlock(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, at start: Int = 0) throws(SluiceError) -> Int {
        let n = src.count
        var ip = 0, op = start
        func fail(_ m: String) -> SluiceError { SluiceError(.malformedFile, "lz4: \(m)") }
        while ip < n {
            let token = Int(src[ip]); ip += 1
            var lit = token >> 4
            if lit == 15 {
                while true {
                    guard ip < n else { throw fail("truncated literal length") }
                    let b = Int(src[ip]); ip += 1
                    lit += b
                    if b != 255 { break }
                }
            }
            guard lit <= n - ip, lit <= dst.count - op else { throw fail("literal runs past the end") }
            if lit > 0 { (dst.baseAddress! + op).copyMemory(from: src.baseAddress! + ip, byteCount: lit) }
            ip += lit
            op += lit
            if ip == n { break }  // the last sequence has no match
            guard ip + 2 <= n else { throw fail("truncated match offset") }
            let offset = Int(src[ip]) | Int(src[ip + 1]) << 8
            ip += 2
            var len = token & 15
            if len == 15 {
                while true {
                    guard ip < n else { throw fail("truncated match length") }
                    let b = Int(src[ip]); ip += 1
                    len += b
                    if b != 255 { break }
                }
            }
            len += 4
            guard offset > 0, offset <= op - start, len <= dst.count - op else { throw fail("match out of range") }
            for k in 0..<len { dst[op + k] = dst[op - offset + k] }
            op += len
        }
        return op - start
    }

    /// Hadoop's framing (big-endian sizes around blocks), as the old LZ4 codec writes; falls
    /// back to a bare block.
    public static func decompressHadoop(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) throws(SluiceError) {
        func be32(_ at: Int) -> Int { Int(src[at]) << 24 | Int(src[at + 1]) << 16 | Int(src[at + 2]) << 8 | Int(src[at + 3]) }
        var ip = 0, op = 0
        framed: do {
            while ip < src.count {
                guard ip + 8 <= src.count else { break framed }
                let raw = be32(ip), packed = be32(ip + 4)
                guard raw <= dst.count - op, packed <= src.count - ip - 8 else { break framed }
                guard let wrote = try? decompressBlock(UnsafeRawBufferPointer(rebasing: src[(ip + 8)..<(ip + 8 + packed)]), into: dst, at: op),
                      wrote == raw else { break framed }
                ip += 8 + packed
                op += raw
            }
            if op == dst.count { return }
        }
        guard try decompressBlock(src, into: dst) == dst.count else { throw SluiceError(.malformedFile, "lz4: block size mismatch") }
    }
}
