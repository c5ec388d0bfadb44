/// Shell-style patterns over object keys: `*` and `?` stay inside one `/`-separated
/// segment, `**` crosses segments, `[abc]` / `[a-z]` / `[!x]` match one character, and
/// `{csv,json}` matches any one of its alternatives.
public struct Glob: Sendable, Equatable {
    public let pattern: String
    let chars: [Character]

    public init(_ pattern: String) {
        self.pattern = pattern
        chars = Array(pattern)
    }

    public func matches(_ key: String) -> Bool { Self.match(chars[...], Array(key)[...]) }

    /// The literal part before the first wildcard: a listing prefix.
    public var prefix: String { String(chars.prefix { !"*?[{".contains($0) }) }

    /// Whether `key` matches, the pattern being relative to the folder `base` (`*.csv` under
    /// `ftp://host/in/` matches `in/a.csv`); a pattern that spells the folder out
    /// (`in/*.csv`) matches too.
    public func matches(_ key: String, under base: String) -> Bool {
        if !base.isEmpty, key.hasPrefix(base), matches(String(key.dropFirst(base.count))) { return true }
        return matches(key)
    }

    /// Where a listing of `base` for this pattern can start.
    public func listingPrefix(under base: String) -> String {
        prefix.hasPrefix(base) ? prefix : base + prefix
    }

    /// A location with a pattern in it (`s3://bucket/input/*.json`) as the folder to list
    /// (`s3://bucket/input/`) and the pattern relative to it (`*.json`); nil when it has none.
    public static func split(location text: String) -> (folder: String, glob: String)? {
        // A Drive location's options (`gdrive://ID/*.csv?by=modified`) stay with the folder.
        if text.hasPrefix("gdrive://"), let q = text.firstIndex(of: "?") {
            let options = text[q...]
            return split(location: String(text[..<q])).map { ($0.folder + options, $0.glob) }
        }
        guard let wild = text.firstIndex(where: { "*?[{".contains($0) }) else { return nil }
        guard let slash = text[..<wild].lastIndex(of: "/") else { return ("", text) }
        return (String(text[...slash]), String(text[text.index(after: slash)...]))
    }

    static func match(_ p: ArraySlice<Character>, _ s: ArraySlice<Character>) -> Bool {
        var p = p, s = s
        while let c = p.first {
            switch c {
            case "*":
                if p.dropFirst().first == "*" {
                    var rest = p.dropFirst(2)
                    if rest.first == "/" { rest = rest.dropFirst() }  // `a/**/b` also matches `a/b`
                    var t = s
                    while true {
                        if match(rest, t) { return true }
                        guard !t.isEmpty else { return false }
                        t = t.dropFirst()
                    }
                }
                let rest = p.dropFirst()
                var t = s
                while true {
                    if match(rest, t) { return true }
                    guard let first = t.first, first != "/" else { return false }
                    t = t.dropFirst()
                }
            case "{":
                guard let close = p.firstIndex(of: "}") else { return s.first == c && match(p.dropFirst(), s.dropFirst()) }
                let rest = p[(close + 1)...]
                for alt in p[(p.startIndex + 1)..<close].split(separator: ",", omittingEmptySubsequences: false) {
                    if match(ArraySlice(Array(alt) + Array(rest)), s) { return true }
                }
                return false
            case "?":
                guard let first = s.first, first != "/" else { return false }
                p = p.dropFirst()
                s = s.dropFirst()
            case "[":
                guard let first = s.first, let close = p.dropFirst(2).firstIndex(of: "]") else { return false }
                var set = p[(p.startIndex + 1)..<close]
                let negate = set.first == "!" || set.first == "^"
                if negate { set = set.dropFirst() }
                var hit = false
                var i = set.startIndex
                while i < set.endIndex {
                    if i + 2 < set.endIndex, set[i + 1] == "-" {
                        if set[i] <= first && first <= set[i + 2] { hit = true }
                        i += 3
                    } else {
                        if set[i] == first { hit = true }
                        i += 1
                    }
                }
                guard hit != negate, first != "/" else { return false }
                p = p[(close + 1)...]
                s = s.dropFirst()
            default:
                guard s.first == c else { return false }
                p = p.dropFirst()
                s = s.dropFirst()
            }
        }
        return s.isEmpty
    }
}
