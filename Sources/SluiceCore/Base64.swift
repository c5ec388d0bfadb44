/// Standard base64 (RFC 4648, with `=` padding), for `bytes` values in text formats.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let reverse: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var it = bytes.makeIterator()
        while let a = it.next() {
            let b = it.next(), c = it.next()
            let n = UInt32(a) << 16 | UInt32(b ?? 0) << 8 | UInt32(c ?? 0)
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(b == nil ? UInt8(ascii: "=") : alphabet[Int(n >> 6 & 63)])
            out.append(c == nil ? UInt8(ascii: "=") : alphabet[Int(n & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the decoded bytes to `out`; false (with `out` possibly extended) on bad input.
    public static func decode(_ b: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        guard b.count % 4 == 0 else { return false }
        var i = 0
        while i < b.count {
            let pad = (b[i + 3] == UInt8(ascii: "=") ? 1 : 0) + (b[i + 2] == UInt8(ascii: "=") ? 1 : 0)
            if pad > 0 && i + 4 != b.count { return false }
            var n: UInt32 = 0
            for k in 0..<(4 - pad) {
                let v = reverse[Int(b[i + k])]
                if v == 0xFF { return false }
                n |= UInt32(v) << UInt32(18 - 6 * k)
            }
            if pad == 2 && b[i + 2] != UInt8(ascii: "=") { return false }
            out.append(UInt8(n >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        return true
    }
}
