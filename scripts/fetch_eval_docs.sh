#!/usr/bin/env bash
# Builds the documents of the unseen answer sets (bench/data/unseen, issue 26) into the cache folder,
# from Debian packages fetched with `apt-get download` (the registry only; nothing else is downloaded):
#   openssh-client.pdf      man pages of openssh-client set with groff -mandoc -Tpdf (groff PDF)
#   writer2latex-manual.pdf writer2latex-manual's user-manual.odt exported to PDF by LibreOffice (word processor PDF)
#   charis-docs/            fonts-sil-charis' HTML documentation pages (HTML documentation set)
#   live-manual.docx        live-manual-odf's English live-manual.en.odt saved as .docx by LibreOffice
# Idempotent: a document already built is kept. LibreOffice (soffice) is installed with apt-get when missing
# (libreoffice-writer-nogui, about 50 packages), which needs root.
set -euo pipefail

CACHE="${LRC_EVAL_DOCS:-$HOME/.cache/local-rag-chat/eval-docs}"
DEBS="$CACHE/debs"
mkdir -p "$DEBS"
cd "$DEBS"

fetch() {  # fetch PACKAGE: the .deb into $DEBS and unpacked under $DEBS/PACKAGE (once)
    local pkg="$1"
    if [ ! -d "$DEBS/$pkg" ]; then
        ls "$pkg"_*.deb >/dev/null 2>&1 || apt-get download "$pkg" >/dev/null
        dpkg-deb -x "$(ls "$pkg"_*.deb | head -1)" "$DEBS/$pkg.tmp"
        mv "$DEBS/$pkg.tmp" "$DEBS/$pkg"
    fi
}

need_soffice() {
    command -v soffice >/dev/null && return 0
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libreoffice-writer-nogui >/dev/null
    else
        echo "LibreOffice is missing: sudo apt-get install --no-install-recommends libreoffice-writer-nogui" >&2
        exit 1
    fi
}

convert() {  # convert FORMAT SOURCE TARGET: LibreOffice export, in a private profile
    local fmt="$1" src="$2" target="$3" out
    out="$(mktemp -d)"
    soffice -env:UserInstallation="file://$out/profile" --headless --convert-to "$fmt" --outdir "$out" "$src" >/dev/null 2>&1
    mv "$out/$(basename "${src%.*}").${fmt%%:*}" "$target"
    rm -rf "$out"
}

# (a) groff PDF: the OpenSSH client's man pages (BSD licence), one PDF
if [ ! -s "$CACHE/openssh-client.pdf" ]; then
    command -v groff >/dev/null || { echo "groff is missing: make ocr (or apt-get install groff)" >&2; exit 1; }
    fetch openssh-client
    man="$DEBS/openssh-client/usr/share/man"
    for page in man1/ssh.1 man5/ssh_config.5 man1/scp.1 man1/sftp.1 man1/ssh-keygen.1 man1/ssh-agent.1 man1/ssh-add.1; do
        zcat "$man/$page.gz"
    done | groff -mandoc -Tpdf > "$CACHE/openssh-client.pdf.tmp"
    mv "$CACHE/openssh-client.pdf.tmp" "$CACHE/openssh-client.pdf"
fi

# (b) word-processor PDF: the Writer2LaTeX user manual (an OpenOffice Writer document, LGPL-2.1)
if [ ! -s "$CACHE/writer2latex-manual.pdf" ]; then
    fetch writer2latex-manual
    need_soffice
    convert pdf "$DEBS/writer2latex-manual/usr/share/doc/writer2latex/manual/user-manual.odt" "$CACHE/writer2latex-manual.pdf"
fi

# (c) HTML documentation set: Charis SIL's documentation pages (fonts-sil-charis)
if [ ! -s "$CACHE/charis-docs/faq.html" ]; then
    fetch fonts-sil-charis
    rm -rf "$CACHE/charis-docs"
    mkdir -p "$CACHE/charis-docs"
    cp "$DEBS"/fonts-sil-charis/usr/share/doc/fonts-sil-charis/documentation/*.html "$CACHE/charis-docs/"
fi

# (d) .docx: the Debian Live manual (GPL-3+), its ODF edition saved by LibreOffice as Word 2007+
if [ ! -s "$CACHE/live-manual.docx" ]; then
    fetch live-manual-odf
    need_soffice
    convert "docx:MS Word 2007 XML" "$DEBS/live-manual-odf/usr/share/doc/live-manual/odt/live-manual.en.odt" \
        "$CACHE/live-manual.docx"
fi

ls -la "$CACHE" | grep -v debs
