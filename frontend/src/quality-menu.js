// Quality menu for video.js, built on videojs-contrib-quality-levels.
//
// VHS fills player.qualityLevels() with one QualityLevel per video rendition of
// the multivariant playlist. This control lists "Auto" plus one item per rung
// (e.g. "720p"); picking a rung enables only the levels with that label, so
// VHS's ABR can only choose that one; "Auto" enables every level again.
import videojs from 'video.js';

const MenuButton = videojs.getComponent('MenuButton');
const MenuItem = videojs.getComponent('MenuItem');

export const AUTO = 'Auto';

// Default label of a level: "720p" from its height, else its bitrate.
export function defaultLabel(level) {
  if (level.height) return `${level.height}p`;
  if (level.bitrate) return `${Math.round(level.bitrate / 1000)} kbps`;
  return String(level.id);
}

class QualityMenuItem extends MenuItem {
  constructor(player, options) {
    super(player, { ...options, selectable: true, multiSelectable: false });
    this.quality = options.label;
    this.el().setAttribute('data-testid', 'quality-item');
    this.el().setAttribute('data-quality', options.label);
  }

  handleClick(event) {
    this.options_.onSelect(this.quality);
    super.handleClick(event);
  }
}

class QualityMenuButton extends MenuButton {
  // options.labelFor(level) -> string: how a level is named in the menu.
  constructor(player, options = {}) {
    super(player, options);
    this.controlText('Quality');
    this.menuButton_.el().setAttribute('data-testid', 'quality-button');
    this.labelEl_ = videojs.dom.createEl('span', {
      className: 'vjs-quality-label',
    });
    this.menuButton_.el().appendChild(this.labelEl_);

    const levels = player.qualityLevels();
    const rebuild = () => this.update();
    // A rebuild per added level is cheap (a handful of rungs).
    this.on(levels, ['addqualitylevel', 'removequalitylevel'], rebuild);
    this.on(levels, 'change', () => this.updateLabel_());
    // A new source starts in Auto.
    this.on(player, 'loadstart', () => {
      this.selected_ = AUTO;
    });
    this.updateLabel_();
  }

  buildCSSClass() {
    return `vjs-quality-menu-button ${super.buildCSSClass()}`;
  }

  buildWrapperCSSClass() {
    return `vjs-quality-menu ${super.buildWrapperCSSClass()}`;
  }

  labelOf_(level) {
    const fn = this.options_.labelFor;
    return (fn && fn(level)) || defaultLabel(level);
  }

  // Distinct labels, highest resolution/bitrate first.
  rungs_() {
    const levels = Array.from(this.player().qualityLevels());
    levels.sort((a, b) => (b.height || 0) - (a.height || 0) || (b.bitrate || 0) - (a.bitrate || 0));
    return [...new Set(levels.map((l) => this.labelOf_(l)))];
  }

  createItems() {
    // Called from the MenuButton constructor too, before our fields exist.
    const selected = this.selected_ || AUTO;
    const rungs = this.rungs_();
    if (rungs.length === 0) return []; // hides the button
    const onSelect = (label) => this.select(label);
    return [AUTO, ...rungs].map(
      (label) =>
        new QualityMenuItem(this.player(), { label, selected: label === selected, onSelect }),
    );
  }

  // Select "Auto" or a rung label.
  select(label) {
    this.selected_ = label;
    const levels = this.player().qualityLevels();
    for (let i = 0; i < levels.length; i++) {
      levels[i].enabled = label === AUTO || this.labelOf_(levels[i]) === label;
    }
    for (const item of this.items || []) item.selected(item.quality === label);
    this.updateLabel_();
  }

  selection() {
    return this.selected_ || AUTO;
  }

  updateLabel_() {
    if (!this.labelEl_) return;
    const levels = this.player().qualityLevels();
    const current = levels[levels.selectedIndex];
    const sel = this.selection();
    // In Auto, show what ABR is playing now, e.g. "Auto · 480p".
    this.labelEl_.textContent =
      sel === AUTO && current ? `${AUTO} · ${this.labelOf_(current)}` : sel;
  }
}

videojs.registerComponent('QualityMenuButton', QualityMenuButton);

// Add the quality menu to a player's control bar, before the fullscreen toggle.
export function addQualityMenu(player, options = {}) {
  const controlBar = player.getChild('ControlBar');
  const fs = controlBar.getChild('FullscreenToggle');
  const index = fs ? controlBar.children().indexOf(fs) : controlBar.children().length;
  return controlBar.addChild('QualityMenuButton', options, index);
}
