/// Just enough XML for S3's answers (ListObjectsV2, errors, multipart): elements with text,
/// read as (path, text) leaves in document order. No attributes, no namespaces kept, no DTDs.
struct MiniXML {
    /// Each text-bearing element: its path from the root (`ListBucketResult/Contents/Key`) and text.
    private(set) var leaves: [(path: String, text: String)] = []

    init(_ bytes: [UInt8]) {
        var stack: [String] = []
        var hasChild: [Bool] = []
        var text: [UInt8] = []
        var i = 0
        let n = bytes.count
        while i < n {
            if bytes[i] != UInt8(ascii: "<") {
                text.append(bytes[i])
                i += 1
                continue
            }
            // A tag, a declaration, a comment or CDATA.
            if bytes[i...].starts(with: Array("<![CDATA[".utf8)) {
                var j = i + 9
                while j + 2 < n && !(bytes[j] == UInt8(ascii: "]") && bytes[j + 1] == UInt8(ascii: "]") && bytes[j + 2] == UInt8(ascii: ">")) { j += 1 }
                text += bytes[(i + 9)..<min(j, n)]
                i = j + 3
                continue
            }
            var j = i + 1
            while j < n && bytes[j] != UInt8(ascii: ">") { j += 1 }
            let inner = bytes[(i + 1)..<min(j, n)]
            i = j + 1
            guard let first = inner.first, first != UInt8(ascii: "?"), first != UInt8(ascii: "!") else { continue }
            if first == UInt8(ascii: "/") {
                if !stack.isEmpty {
                    if hasChild.last == false { leaves.append((stack.joined(separator: "/"), Self.unescape(text))) }
                    stack.removeLast()
                    hasChild.removeLast()
                }
                text.removeAll()
                continue
            }
            let selfClosing = inner.last == UInt8(ascii: "/")
            let nameBytes = inner.prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "\t") && $0 != UInt8(ascii: "\n") }
            let name = String(decoding: nameBytes, as: UTF8.self)
            if !hasChild.isEmpty { hasChild[hasChild.count - 1] = true }
            if selfClosing {
                leaves.append(((stack + [name]).joined(separator: "/"), ""))
            } else {
                stack.append(name)
                hasChild.append(false)
            }
            text.removeAll()
        }
    }

    /// `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` and numeric references.
    static func unescape(_ b: [UInt8]) -> String {
        let s = String(decoding: b, as: UTF8.self)
        guard s.contains("&") else { return s }
        var out = ""
        var rest = Substring(s)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { out += rest[amp...]; return out }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let code = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : entity.hasPrefix("#") ? UInt32(entity.dropFirst()) : nil
                if let code, let scalar = Unicode.Scalar(code) { out.unicodeScalars.append(scalar) } else { out += "&\(entity);" }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }

    /// The first leaf whose path ends with `suffix`.
    func first(_ suffix: String) -> String? {
        leaves.first { $0.path == suffix || $0.path.hasSuffix("/" + suffix) }?.text
    }
}
