public import SluiceCore

/// Parquet's integer encodings: the RLE / bit-packed hybrid (levels, dictionary indices,
/// booleans), DELTA_BINARY_PACKED and bit unpacking. Decoders read from a bounded buffer
/// and check every count against what the page declares.
public enum ParquetEncoding {
    static func fail(_ m: String) -> SluiceError { SluiceError(.malformedFile, "Parquet page: \(m)") }

    /// Bits needed to store values up to `max`.
    public static func bitWidth(_ max: Int) -> Int { max == 0 ? 0 : Int.bitWidth - max.leadingZeroBitCount }

    /// Decodes `count` values of the RLE / bit-packed hybrid at `bytes` (no length prefix)
    /// into `out`. Returns the bytes consumed.
    @discardableResult
    public static func decodeHybrid(_ bytes: UnsafeRawBufferPointer, bitWidth: Int, count: Int, into out: inout [Int32]) throws(SluiceError) -> Int {
        out.removeAll(keepingCapacity: true)
        guard count > 0 else { return 0 }
        guard bitWidth >= 0 && bitWidth <= 32 else { throw fail("bit width \(bitWidth) is out of range") }
        out.reserveCapacity(count)
        if bitWidth == 0 {
            out.append(contentsOf: repeatElement(0, count: count))
            return 0
        }
        let base = bytes.baseAddress!
        let n = bytes.count
        var pos = 0
        let valueBytes = (bitWidth + 7) / 8
        let mask: UInt64 = bitWidth == 64 ? ~0 : (1 << UInt64(bitWidth)) - 1
        while out.count < count {
            // Header varint.
            var header: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard pos < n else { throw fail("levels or indices run past the end of the page") }
                let b = base.load(fromByteOffset: pos, as: UInt8.self)
                pos += 1
                header |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { break }
                shift += 7
                guard shift < 64 else { throw fail("bad run header") }
            }
            if header & 1 == 0 {
                let run = Int(clamping: header >> 1)
                guard pos + valueBytes <= n else { throw fail("truncated run") }
                var v: UInt64 = 0
                for k in 0..<valueBytes { v |= UInt64(base.load(fromByteOffset: pos + k, as: UInt8.self)) << (8 * UInt64(k)) }
                pos += valueBytes
                let take = min(run, count - out.count)
                out.append(contentsOf: repeatElement(Int32(truncatingIfNeeded: v & mask), count: take))
            } else {
                let groups = Int(clamping: header >> 1)
                guard groups <= (n - pos) / max(1, bitWidth) + 1 else { throw fail("bit-packed run runs past the end") }
                let values = groups * 8
                let byteCount = groups * bitWidth
                let available = min(byteCount, n - pos)
                let take = min(values, count - out.count)
                // Values whose bits lie past the buffer are only allowed as padding.
                guard take * bitWidth <= available * 8 else { throw fail("bit-packed run runs past the end") }
                unpack(base + pos, available: available, bitWidth: bitWidth, count: take, into: &out)
                pos += available
            }
        }
        return pos
    }

    /// Unpacks `count` little-endian bit-packed values of `bitWidth` bits (LSB first).
    @inline(__always)
    static func unpack(_ p: UnsafeRawPointer, available: Int, bitWidth: Int, count: Int, into out: inout [Int32]) {
        let mask: UInt64 = (1 << UInt64(bitWidth)) - 1
        var bitPos = 0
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        out.withUnsafeMutableBufferPointer { o in
            for k in 0..<count {
                let byte = bitPos >> 3
                let shift = UInt64(bitPos & 7)
                var word: UInt64
                if byte + 8 <= available {
                    word = p.loadUnaligned(fromByteOffset: byte, as: UInt64.self)
                } else {
                    word = 0
                    for b in 0..<min(8, available - byte) { word |= UInt64(p.load(fromByteOffset: byte + b, as: UInt8.self)) << (8 * UInt64(b)) }
                }
                o[start + k] = Int32(truncatingIfNeeded: (word >> shift) & mask)
                bitPos += bitWidth
            }
        }
    }

    /// Unpacks 64-bit-wide-capable values (DELTA_BINARY_PACKED miniblocks, widths up to 64).
    @inline(__always)
    static func unpack64(_ p: UnsafeRawPointer, bitWidth: Int, count: Int, into out: UnsafeMutablePointer<UInt64>) {
        if bitWidth == 0 {
            out.update(repeating: 0, count: count)
            return
        }
        let mask: UInt64 = bitWidth == 64 ? ~0 : (1 << UInt64(bitWidth)) - 1
        var bitPos = 0
        for k in 0..<count {
            let byte = bitPos >> 3
            let shift = UInt64(bitPos & 7)
            // Up to 64 + 7 bits: read 9 bytes when needed.
            var v = p.loadUnaligned(fromByteOffset: byte, as: UInt64.self) >> shift
            if shift != 0 && bitWidth + Int(shift) > 64 {
                v |= UInt64(p.load(fromByteOffset: byte + 8, as: UInt8.self)) << (64 - shift)
            }
            out[k] = v & mask
            bitPos += bitWidth
        }
    }

    /// Decodes DELTA_BINARY_PACKED integers (at most `limit` of them) into `out`. Returns
    /// the bytes consumed. Arithmetic wraps, as the encoding requires.
    @discardableResult
    public static func decodeDeltaBinaryPacked(_ bytes: UnsafeRawBufferPointer, limit: Int, into out: inout [Int64]) throws(SluiceError) -> Int {
        out.removeAll(keepingCapacity: true)
        var r = ThriftReader(bytes, what: "DELTA_BINARY_PACKED")
        let blockSize = try r.varint()
        let miniblocks = try r.varint()
        let total = try r.varint()
        var value = try r.zigzag()
        guard blockSize > 0, blockSize % 128 == 0, blockSize <= 1 << 20, miniblocks > 0, blockSize % miniblocks == 0,
              (blockSize / miniblocks) % 32 == 0 else { throw fail("bad DELTA_BINARY_PACKED header") }
        guard total <= UInt64(limit) else { throw fail("DELTA_BINARY_PACKED holds \(total) values, more than the page's \(limit)") }
        let count = Int(total)
        var pos = r.position
        if count == 0 { return pos }
        out.reserveCapacity(count)
        out.append(value)
        let perMini = Int(blockSize / miniblocks)
        let base = bytes.baseAddress!
        let n = bytes.count
        var scratch = [UInt64](repeating: 0, count: perMini)
        while out.count < count {
            var mr = ThriftReader(UnsafeRawBufferPointer(rebasing: bytes[pos...]), what: "DELTA_BINARY_PACKED")
            let minDelta = try mr.zigzag()
            pos += mr.position
            guard pos + Int(miniblocks) <= n else { throw fail("truncated DELTA_BINARY_PACKED block") }
            let widthsAt = pos
            pos += Int(miniblocks)
            for m in 0..<Int(miniblocks) where out.count < count {
                let width = Int(base.load(fromByteOffset: widthsAt + m, as: UInt8.self))
                guard width <= 64 else { throw fail("miniblock bit width \(width)") }
                let size = perMini * width / 8
                guard pos + size <= n else { throw fail("truncated DELTA_BINARY_PACKED miniblock") }
                // unpack64 may read up to 8 bytes past a value: copy when near the end.
                let take = min(perMini, count - out.count)
                if pos + size + 16 <= n {
                    scratch.withUnsafeMutableBufferPointer { unpack64(base + pos, bitWidth: width, count: take, into: $0.baseAddress!) }
                } else {
                    var tmp = [UInt8](repeating: 0, count: size + 16)
                    tmp.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: base + pos, byteCount: size) }
                    tmp.withUnsafeBytes { t in
                        scratch.withUnsafeMutableBufferPointer { unpack64(t.baseAddress!, bitWidth: width, count: take, into: $0.baseAddress!) }
                    }
                }
                for k in 0..<take {
                    value = value &+ minDelta &+ Int64(bitPattern: scratch[k])
                    out.append(value)
                }
                pos += size
            }
        }
        return pos
    }

    // MARK: Encoders (for the writer)

    /// Appends `values` as the RLE / bit-packed hybrid: runs of 8+ equal values as RLE,
    /// everything else bit-packed in groups of 8.
    public static func encodeHybrid(_ values: UnsafeBufferPointer<Int32>, bitWidth: Int, into out: inout [UInt8]) {
        let n = values.count
        guard n > 0 else { return }
        let valueBytes = (bitWidth + 7) / 8
        var i = 0
        var packedStart = -1  // start of a pending bit-packed stretch
        func flushPacked(upTo end: Int) {
            guard packedStart >= 0 else { return }
            var count = end - packedStart
            let groups = (count + 7) / 8
            count = groups * 8
            writeVarint(UInt64(groups << 1 | 1), &out)
            var acc: UInt64 = 0, bits = 0
            for k in 0..<count {
                let v = packedStart + k < end ? UInt64(UInt32(bitPattern: values[packedStart + k])) : 0
                acc |= v << UInt64(bits)
                bits += bitWidth
                while bits >= 8 { out.append(UInt8(acc & 0xFF)); acc >>= 8; bits -= 8 }
            }
            if bits > 0 { out.append(UInt8(acc & 0xFF)) }
            packedStart = -1
        }
        while i < n {
            var run = 1
            while i + run < n && values[i + run] == values[i] { run += 1 }
            if run >= 8 {
                // RLE only starts at a group boundary of the pending packed stretch: pack
                // the run's first values up to the boundary, and RLE the rest if still long.
                if packedStart >= 0 && (i - packedStart) % 8 != 0 {
                    let pad = 8 - (i - packedStart) % 8
                    i += run - pad >= 8 ? pad : run
                    continue
                }
                flushPacked(upTo: i)
                writeVarint(UInt64(run << 1), &out)
                var v = UInt32(bitPattern: values[i])
                for _ in 0..<valueBytes { out.append(UInt8(v & 0xFF)); v >>= 8 }
                i += run
            } else {
                if packedStart < 0 { packedStart = i }
                i += run
            }
        }
        flushPacked(upTo: n)
    }

    static func writeVarint(_ v: UInt64, _ out: inout [UInt8]) {
        var v = v
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }
}
