"""Regenerate catalog.jsonl, the demo's sample multilingual catalog.

Written for Polyseek: each product type below has a title and a short
description in en, de, fr, es, ja and zh; every (type, language) pair becomes one
listing with its own brand, price and id, so a query in one language has
relevant listings in all the others.  Run: python bench/demo_data/make_catalog.py
"""

import json
import random
from pathlib import Path

# category, {lang: (title, description)}
TYPES = [
 ("Electronics > Audio > Headphones", {
  "en": ("Wireless noise-cancelling headphones", "Over-ear Bluetooth headphones with active noise cancellation and 30-hour battery."),
  "de": ("Kabellose Kopfhörer mit Geräuschunterdrückung", "Over-Ear-Bluetooth-Kopfhörer mit aktiver Geräuschunterdrückung und 30 Stunden Akkulaufzeit."),
  "fr": ("Casque sans fil à réduction de bruit", "Casque Bluetooth circum-auriculaire avec réduction active du bruit et 30 heures d'autonomie."),
  "es": ("Auriculares inalámbricos con cancelación de ruido", "Auriculares Bluetooth de diadema con cancelación activa de ruido y 30 horas de batería."),
  "ja": ("ワイヤレスノイズキャンセリングヘッドホン", "アクティブノイズキャンセリング搭載のBluetoothヘッドホン。30時間再生。"),
  "zh": ("无线降噪耳机", "头戴式蓝牙耳机，主动降噪，续航30小时。")}),
 ("Electronics > Audio > Earbuds", {
  "en": ("True wireless earbuds", "Compact in-ear earbuds with charging case, sweat resistant for sports."),
  "de": ("True-Wireless-Ohrhörer", "Kompakte In-Ear-Ohrhörer mit Ladeetui, schweißresistent für den Sport."),
  "fr": ("Écouteurs sans fil", "Écouteurs intra-auriculaires compacts avec étui de charge, résistants à la transpiration."),
  "es": ("Auriculares de botón inalámbricos", "Auriculares intrauditivos compactos con estuche de carga, resistentes al sudor."),
  "ja": ("完全ワイヤレスイヤホン", "充電ケース付きのコンパクトなイヤホン。汗に強くスポーツに最適。"),
  "zh": ("真无线蓝牙耳塞", "小巧入耳式耳机，附充电盒，防汗适合运动。")}),
 ("Electronics > Audio > Speakers", {
  "en": ("Portable Bluetooth speaker", "Waterproof outdoor speaker with deep bass and 12 hours of playtime."),
  "de": ("Tragbarer Bluetooth-Lautsprecher", "Wasserdichter Outdoor-Lautsprecher mit kräftigem Bass und 12 Stunden Spielzeit."),
  "fr": ("Enceinte Bluetooth portable", "Enceinte étanche d'extérieur avec basses profondes et 12 heures d'écoute."),
  "es": ("Altavoz Bluetooth portátil", "Altavoz resistente al agua para exteriores con graves profundos y 12 horas de reproducción."),
  "ja": ("ポータブルBluetoothスピーカー", "防水仕様のアウトドアスピーカー。重低音、12時間再生。"),
  "zh": ("便携式蓝牙音箱", "防水户外音箱，低音浑厚，播放12小时。")}),
 ("Electronics > Phones > Chargers", {
  "en": ("USB-C fast charger 65W", "Compact GaN wall charger for laptops, tablets and phones."),
  "de": ("USB-C-Schnellladegerät 65 W", "Kompaktes GaN-Netzteil für Laptops, Tablets und Smartphones."),
  "fr": ("Chargeur rapide USB-C 65 W", "Chargeur secteur GaN compact pour ordinateurs portables, tablettes et téléphones."),
  "es": ("Cargador rápido USB-C de 65 W", "Cargador de pared GaN compacto para portátiles, tabletas y móviles."),
  "ja": ("USB-C急速充電器 65W", "ノートPC・タブレット・スマホ対応の小型GaN充電器。"),
  "zh": ("65W USB-C快速充电器", "氮化镓小巧充电头，适用于笔记本、平板和手机。")}),
 ("Electronics > Phones > Cases", {
  "en": ("Shockproof phone case", "Slim protective case with raised edges for screen and camera."),
  "de": ("Stoßfeste Handyhülle", "Schlanke Schutzhülle mit erhöhtem Rand für Display und Kamera."),
  "fr": ("Coque de téléphone antichoc", "Coque de protection fine avec rebords surélevés pour l'écran et l'appareil photo."),
  "es": ("Funda de móvil antigolpes", "Funda protectora delgada con bordes elevados para pantalla y cámara."),
  "ja": ("耐衝撃スマホケース", "画面とカメラを守る縁高設計のスリムな保護ケース。"),
  "zh": ("防摔手机壳", "轻薄保护壳，凸边设计保护屏幕和摄像头。")}),
 ("Electronics > Computers > Keyboards", {
  "en": ("Mechanical keyboard with RGB backlight", "Tenkeyless mechanical gaming keyboard with hot-swappable switches."),
  "de": ("Mechanische Tastatur mit RGB-Beleuchtung", "Mechanische Gaming-Tastatur ohne Nummernblock mit austauschbaren Schaltern."),
  "fr": ("Clavier mécanique rétroéclairé RGB", "Clavier gamer mécanique sans pavé numérique avec switchs remplaçables."),
  "es": ("Teclado mecánico con retroiluminación RGB", "Teclado gaming mecánico sin teclado numérico con interruptores intercambiables."),
  "ja": ("RGBバックライト付きメカニカルキーボード", "テンキーレスのゲーミングキーボード。スイッチ交換可能。"),
  "zh": ("RGB背光机械键盘", "无数字键盘的机械游戏键盘，支持热插拔轴体。")}),
 ("Electronics > Computers > Mice", {
  "en": ("Ergonomic wireless mouse", "Vertical mouse that reduces wrist strain, silent clicks, rechargeable."),
  "de": ("Ergonomische kabellose Maus", "Vertikale Maus, die das Handgelenk entlastet, leise Klicks, wiederaufladbar."),
  "fr": ("Souris sans fil ergonomique", "Souris verticale qui soulage le poignet, clics silencieux, rechargeable."),
  "es": ("Ratón inalámbrico ergonómico", "Ratón vertical que reduce la tensión en la muñeca, clics silenciosos, recargable."),
  "ja": ("エルゴノミクスワイヤレスマウス", "手首の負担を減らす縦型マウス。静音クリック、充電式。"),
  "zh": ("人体工学无线鼠标", "立式鼠标减轻手腕负担，静音按键，可充电。")}),
 ("Electronics > Computers > Monitors", {
  "en": ("27-inch 4K monitor", "IPS display with HDR, USB-C power delivery and height-adjustable stand."),
  "de": ("27-Zoll-4K-Monitor", "IPS-Bildschirm mit HDR, USB-C-Stromversorgung und höhenverstellbarem Standfuß."),
  "fr": ("Écran 4K 27 pouces", "Moniteur IPS HDR avec alimentation USB-C et pied réglable en hauteur."),
  "es": ("Monitor 4K de 27 pulgadas", "Pantalla IPS con HDR, carga USB-C y soporte regulable en altura."),
  "ja": ("27インチ4Kモニター", "HDR対応IPSディスプレイ。USB-C給電、高さ調整スタンド付き。"),
  "zh": ("27英寸4K显示器", "IPS屏幕，支持HDR，USB-C供电，可升降支架。")}),
 ("Electronics > Cameras > Action Cameras", {
  "en": ("Waterproof action camera", "4K action cam with image stabilization, waterproof to 10 meters."),
  "de": ("Wasserdichte Actionkamera", "4K-Actioncam mit Bildstabilisierung, wasserdicht bis 10 Meter."),
  "fr": ("Caméra d'action étanche", "Caméra sport 4K avec stabilisation d'image, étanche jusqu'à 10 mètres."),
  "es": ("Cámara deportiva sumergible", "Cámara de acción 4K con estabilización de imagen, sumergible hasta 10 metros."),
  "ja": ("防水アクションカメラ", "手ブレ補正付き4Kアクションカメラ。水深10メートル防水。"),
  "zh": ("防水运动相机", "4K运动相机，带防抖功能，防水10米。")}),
 ("Electronics > Wearables > Smartwatches", {
  "en": ("Smartwatch with heart rate monitor", "Fitness watch with GPS, sleep tracking and a 7-day battery."),
  "de": ("Smartwatch mit Herzfrequenzmessung", "Fitnessuhr mit GPS, Schlaftracking und 7 Tagen Akkulaufzeit."),
  "fr": ("Montre connectée avec cardiofréquencemètre", "Montre fitness avec GPS, suivi du sommeil et 7 jours d'autonomie."),
  "es": ("Reloj inteligente con pulsómetro", "Reloj deportivo con GPS, seguimiento del sueño y 7 días de batería."),
  "ja": ("心拍計付きスマートウォッチ", "GPS・睡眠計測対応のフィットネスウォッチ。バッテリー7日間。"),
  "zh": ("心率监测智能手表", "运动手表，支持GPS和睡眠监测，续航7天。")}),
 ("Home & Garden > Kitchen > Coffee Makers", {
  "en": ("French press coffee maker", "Borosilicate glass French press, 1 liter, with stainless steel filter."),
  "de": ("French-Press-Kaffeebereiter", "French Press aus Borosilikatglas, 1 Liter, mit Edelstahlfilter."),
  "fr": ("Cafetière à piston", "Cafetière à piston en verre borosilicaté, 1 litre, filtre en inox."),
  "es": ("Cafetera de émbolo", "Cafetera francesa de vidrio borosilicato de 1 litro con filtro de acero inoxidable."),
  "ja": ("フレンチプレスコーヒーメーカー", "耐熱ガラス製フレンチプレス1リットル、ステンレスフィルター付き。"),
  "zh": ("法压壶咖啡壶", "高硼硅玻璃法压壶，容量1升，不锈钢滤网。")}),
 ("Home & Garden > Kitchen > Espresso Machines", {
  "en": ("Espresso machine with milk frother", "15-bar espresso maker with steam wand for cappuccino and latte."),
  "de": ("Espressomaschine mit Milchaufschäumer", "Siebträgermaschine mit 15 bar und Dampfdüse für Cappuccino und Latte."),
  "fr": ("Machine à expresso avec mousseur à lait", "Machine expresso 15 bars avec buse vapeur pour cappuccino et latte."),
  "es": ("Cafetera espresso con espumador de leche", "Cafetera espresso de 15 bares con vaporizador para capuchino y latte."),
  "ja": ("ミルクフォーマー付きエスプレッソマシン", "15気圧のエスプレッソマシン。スチームノズルでカプチーノやラテも。"),
  "zh": ("带奶泡器的意式咖啡机", "15巴压力意式咖啡机，配蒸汽棒，可做卡布奇诺和拿铁。")}),
 ("Home & Garden > Kitchen > Kettles", {
  "en": ("Electric kettle with temperature control", "1.7 L stainless steel kettle with keep-warm function for tea."),
  "de": ("Wasserkocher mit Temperatureinstellung", "1,7-Liter-Wasserkocher aus Edelstahl mit Warmhaltefunktion für Tee."),
  "fr": ("Bouilloire électrique à température réglable", "Bouilloire inox 1,7 L avec fonction maintien au chaud pour le thé."),
  "es": ("Hervidor eléctrico con control de temperatura", "Hervidor de acero inoxidable de 1,7 L con función de mantener caliente."),
  "ja": ("温度調節機能付き電気ケトル", "1.7Lステンレスケトル。保温機能付きでお茶にも。"),
  "zh": ("控温电热水壶", "1.7升不锈钢电水壶，带保温功能，适合泡茶。")}),
 ("Home & Garden > Kitchen > Cookware", {
  "en": ("Non-stick frying pan 28 cm", "Aluminium frying pan with ceramic non-stick coating, induction ready."),
  "de": ("Antihaft-Bratpfanne 28 cm", "Aluminium-Bratpfanne mit Keramik-Antihaftbeschichtung, induktionsgeeignet."),
  "fr": ("Poêle antiadhésive 28 cm", "Poêle en aluminium avec revêtement céramique antiadhésif, compatible induction."),
  "es": ("Sartén antiadherente de 28 cm", "Sartén de aluminio con recubrimiento cerámico antiadherente, apta para inducción."),
  "ja": ("焦げ付かないフライパン 28cm", "セラミックコーティングのアルミフライパン。IH対応。"),
  "zh": ("28厘米不粘煎锅", "铝制煎锅，陶瓷不粘涂层，适用电磁炉。")}),
 ("Home & Garden > Kitchen > Knives", {
  "en": ("Chef's knife 20 cm", "Forged stainless steel kitchen knife with ergonomic handle."),
  "de": ("Kochmesser 20 cm", "Geschmiedetes Küchenmesser aus Edelstahl mit ergonomischem Griff."),
  "fr": ("Couteau de chef 20 cm", "Couteau de cuisine forgé en acier inoxydable avec manche ergonomique."),
  "es": ("Cuchillo de chef de 20 cm", "Cuchillo de cocina forjado de acero inoxidable con mango ergonómico."),
  "ja": ("牛刀 20cm", "鍛造ステンレスの包丁。握りやすいハンドル。"),
  "zh": ("20厘米主厨刀", "锻造不锈钢厨师刀，人体工学刀柄。")}),
 ("Home & Garden > Kitchen > Drinkware", {
  "en": ("Insulated stainless steel water bottle", "Vacuum bottle, 750 ml, keeps drinks cold for 24 hours and hot for 12."),
  "de": ("Isolierte Edelstahl-Trinkflasche", "Vakuumflasche, 750 ml, hält Getränke 24 Stunden kalt und 12 Stunden heiß."),
  "fr": ("Gourde isotherme en inox", "Bouteille isotherme 750 ml, garde les boissons froides 24 h et chaudes 12 h."),
  "es": ("Botella térmica de acero inoxidable", "Botella al vacío de 750 ml, mantiene frío 24 horas y caliente 12."),
  "ja": ("真空断熱ステンレスボトル", "750mlの水筒。保冷24時間、保温12時間。"),
  "zh": ("不锈钢保温杯", "真空保温瓶750毫升，保冷24小时，保温12小时。")}),
 ("Home & Garden > Appliances > Vacuum Cleaners", {
  "en": ("Robot vacuum cleaner with laser mapping", "Self-charging robot vacuum with mopping and app control."),
  "de": ("Saugroboter mit Laser-Navigation", "Selbstladender Saugroboter mit Wischfunktion und App-Steuerung."),
  "fr": ("Aspirateur robot avec cartographie laser", "Robot aspirateur à recharge automatique avec serpillière et contrôle par appli."),
  "es": ("Robot aspirador con mapeo láser", "Robot aspirador con carga automática, función de fregado y control por app."),
  "ja": ("レーザーマッピング搭載ロボット掃除機", "自動充電、水拭き対応、アプリ操作可能なロボット掃除機。"),
  "zh": ("激光导航扫地机器人", "自动回充扫地机器人，带拖地功能，支持手机App控制。")}),
 ("Home & Garden > Appliances > Air Purifiers", {
  "en": ("HEPA air purifier", "Quiet air purifier for bedrooms up to 40 m², removes pollen and dust."),
  "de": ("HEPA-Luftreiniger", "Leiser Luftreiniger für Schlafzimmer bis 40 m², entfernt Pollen und Staub."),
  "fr": ("Purificateur d'air HEPA", "Purificateur silencieux pour chambres jusqu'à 40 m², élimine pollen et poussière."),
  "es": ("Purificador de aire HEPA", "Purificador silencioso para dormitorios de hasta 40 m², elimina polen y polvo."),
  "ja": ("HEPA空気清浄機", "40㎡までの寝室向け静音空気清浄機。花粉やホコリを除去。"),
  "zh": ("HEPA空气净化器", "静音空气净化器，适用40平方米卧室，去除花粉和灰尘。")}),
 ("Home & Garden > Furniture > Office Chairs", {
  "en": ("Ergonomic office chair", "Mesh desk chair with lumbar support and adjustable armrests."),
  "de": ("Ergonomischer Bürostuhl", "Schreibtischstuhl aus Netzstoff mit Lordosenstütze und verstellbaren Armlehnen."),
  "fr": ("Chaise de bureau ergonomique", "Fauteuil de bureau en maille avec soutien lombaire et accoudoirs réglables."),
  "es": ("Silla de oficina ergonómica", "Silla de escritorio de malla con soporte lumbar y reposabrazos ajustables."),
  "ja": ("エルゴノミクスオフィスチェア", "ランバーサポートと調節可能なアームレスト付きメッシュチェア。"),
  "zh": ("人体工学办公椅", "网布电脑椅，带腰托和可调节扶手。")}),
 ("Home & Garden > Furniture > Desks", {
  "en": ("Electric standing desk", "Height-adjustable sit-stand desk with memory presets, 140 x 70 cm."),
  "de": ("Elektrisch höhenverstellbarer Schreibtisch", "Steh-Sitz-Schreibtisch mit Memory-Funktion, 140 x 70 cm."),
  "fr": ("Bureau assis-debout électrique", "Bureau réglable en hauteur avec positions mémorisées, 140 x 70 cm."),
  "es": ("Escritorio elevable eléctrico", "Mesa de altura regulable con posiciones de memoria, 140 x 70 cm."),
  "ja": ("電動昇降デスク", "メモリー機能付きの高さ調節スタンディングデスク、140×70cm。"),
  "zh": ("电动升降桌", "可调高度站立办公桌，带记忆功能，140×70厘米。")}),
 ("Home & Garden > Furniture > Tables", {
  "en": ("Solid wood dining table for four", "Oak dining table with rounded corners, seats four people."),
  "de": ("Esstisch aus Massivholz für vier Personen", "Eichen-Esstisch mit abgerundeten Ecken für vier Personen."),
  "fr": ("Table à manger en bois massif pour quatre", "Table en chêne aux coins arrondis, quatre places."),
  "es": ("Mesa de comedor de madera maciza para cuatro", "Mesa de roble con esquinas redondeadas para cuatro personas."),
  "ja": ("無垢材ダイニングテーブル 4人用", "角が丸いオーク材のダイニングテーブル。4人掛け。"),
  "zh": ("四人实木餐桌", "橡木餐桌，圆角设计，可坐四人。")}),
 ("Home & Garden > Bedding > Pillows", {
  "en": ("Memory foam pillow", "Contour pillow for neck support with washable cover."),
  "de": ("Kissen aus Memory-Schaum", "Nackenstützkissen mit waschbarem Bezug."),
  "fr": ("Oreiller à mémoire de forme", "Oreiller ergonomique pour soutenir la nuque, housse lavable."),
  "es": ("Almohada viscoelástica", "Almohada cervical con funda lavable."),
  "ja": ("低反発まくら", "首を支える形状の枕。カバーは洗濯可能。"),
  "zh": ("记忆棉枕头", "护颈枕，枕套可水洗。")}),
 ("Home & Garden > Bedding > Duvets", {
  "en": ("All-season duvet", "Lightweight down alternative comforter, machine washable."),
  "de": ("Ganzjahresbettdecke", "Leichte Bettdecke mit Daunenersatz, maschinenwaschbar."),
  "fr": ("Couette toutes saisons", "Couette légère en fibres synthétiques, lavable en machine."),
  "es": ("Edredón para todo el año", "Edredón ligero de fibra alternativa al plumón, lavable a máquina."),
  "ja": ("オールシーズン掛け布団", "軽量で洗濯機で洗える掛け布団。"),
  "zh": ("四季被", "轻盈仿羽绒被，可机洗。")}),
 ("Home & Garden > Lighting > Lamps", {
  "en": ("LED desk lamp with dimmer", "Adjustable reading lamp with five color temperatures and USB port."),
  "de": ("LED-Schreibtischlampe dimmbar", "Verstellbare Leselampe mit fünf Farbtemperaturen und USB-Anschluss."),
  "fr": ("Lampe de bureau LED à variateur", "Lampe de lecture orientable avec cinq températures de couleur et port USB."),
  "es": ("Lámpara de escritorio LED regulable", "Lámpara de lectura ajustable con cinco temperaturas de color y puerto USB."),
  "ja": ("調光機能付きLEDデスクライト", "5段階の色温度とUSBポートを備えた角度調整可能な読書灯。"),
  "zh": ("可调光LED台灯", "可调节阅读灯，五种色温，带USB接口。")}),
 ("Home & Garden > Garden > Hoses", {
  "en": ("Expandable garden hose 30 m", "Lightweight hose that expands to 30 meters with a spray nozzle."),
  "de": ("Flexibler Gartenschlauch 30 m", "Leichter Schlauch, der sich auf 30 Meter ausdehnt, mit Sprühdüse."),
  "fr": ("Tuyau d'arrosage extensible 30 m", "Tuyau léger qui s'allonge jusqu'à 30 mètres, avec pistolet."),
  "es": ("Manguera de jardín extensible de 30 m", "Manguera ligera que se extiende hasta 30 metros, con pistola de riego."),
  "ja": ("伸縮ガーデンホース 30m", "30メートルまで伸びる軽量ホース。散水ノズル付き。"),
  "zh": ("30米伸缩花园水管", "轻便水管可伸长至30米，附喷水枪。")}),
 ("Home & Garden > Garden > Lawn Mowers", {
  "en": ("Cordless lawn mower", "Battery-powered lawn mower with 40 cm cutting width and grass box."),
  "de": ("Akku-Rasenmäher", "Akkubetriebener Rasenmäher mit 40 cm Schnittbreite und Grasfangkorb."),
  "fr": ("Tondeuse à gazon sans fil", "Tondeuse à batterie avec largeur de coupe de 40 cm et bac de ramassage."),
  "es": ("Cortacésped inalámbrico", "Cortacésped a batería con 40 cm de ancho de corte y recogedor."),
  "ja": ("充電式芝刈り機", "刈幅40cm、集草ボックス付きのバッテリー式芝刈り機。"),
  "zh": ("充电式割草机", "电池驱动割草机，割幅40厘米，带集草箱。")}),
 ("Sporting Goods > Fitness > Yoga Mats", {
  "en": ("Non-slip yoga mat", "Thick 6 mm exercise mat with carrying strap."),
  "de": ("Rutschfeste Yogamatte", "Dicke 6-mm-Trainingsmatte mit Tragegurt."),
  "fr": ("Tapis de yoga antidérapant", "Tapis d'exercice épais de 6 mm avec sangle de transport."),
  "es": ("Esterilla de yoga antideslizante", "Esterilla de ejercicio de 6 mm de grosor con correa de transporte."),
  "ja": ("滑り止めヨガマット", "厚さ6mmのトレーニングマット。持ち運び用ストラップ付き。"),
  "zh": ("防滑瑜伽垫", "6毫米加厚健身垫，附背带。")}),
 ("Sporting Goods > Fitness > Dumbbells", {
  "en": ("Adjustable dumbbells set", "Pair of adjustable dumbbells from 2 to 24 kg for home workouts."),
  "de": ("Verstellbares Kurzhantel-Set", "Paar verstellbare Kurzhanteln von 2 bis 24 kg für das Training zu Hause."),
  "fr": ("Haltères réglables", "Paire d'haltères réglables de 2 à 24 kg pour s'entraîner à la maison."),
  "es": ("Juego de mancuernas ajustables", "Par de mancuernas ajustables de 2 a 24 kg para entrenar en casa."),
  "ja": ("可変式ダンベルセット", "2〜24kgまで調整できる家庭用ダンベル2個組。"),
  "zh": ("可调节哑铃套装", "一对可调节哑铃，2至24公斤，适合居家锻炼。")}),
 ("Sporting Goods > Cycling > Bicycles", {
  "en": ("Kids bike 16 inch with training wheels", "Children's bicycle for ages 4 to 7 with stabilisers and bell."),
  "de": ("Kinderfahrrad 16 Zoll mit Stützrädern", "Kinderrad für 4 bis 7 Jahre mit Stützrädern und Klingel."),
  "fr": ("Vélo enfant 16 pouces avec roulettes", "Vélo pour enfants de 4 à 7 ans avec stabilisateurs et sonnette."),
  "es": ("Bicicleta infantil de 16 pulgadas con ruedines", "Bicicleta para niños de 4 a 7 años con ruedas de apoyo y timbre."),
  "ja": ("補助輪付き子供用自転車 16インチ", "4〜7歳向けの補助輪・ベル付き子供用自転車。"),
  "zh": ("16寸儿童自行车带辅助轮", "适合4至7岁儿童，带辅助轮和车铃。")}),
 ("Sporting Goods > Camping > Tents", {
  "en": ("Two-person camping tent", "Lightweight waterproof dome tent that sets up in five minutes."),
  "de": ("Campingzelt für zwei Personen", "Leichtes, wasserdichtes Kuppelzelt, in fünf Minuten aufgebaut."),
  "fr": ("Tente de camping deux places", "Tente dôme légère et imperméable, montée en cinq minutes."),
  "es": ("Tienda de campaña para dos personas", "Tienda iglú ligera e impermeable que se monta en cinco minutos."),
  "ja": ("2人用キャンプテント", "5分で設営できる軽量防水ドームテント。"),
  "zh": ("双人露营帐篷", "轻量防水圆顶帐篷，五分钟即可搭好。")}),
 ("Sporting Goods > Camping > Sleeping Bags", {
  "en": ("Mummy sleeping bag", "Warm sleeping bag rated to -5 °C with compression sack."),
  "de": ("Mumienschlafsack", "Warmer Schlafsack bis -5 °C mit Kompressionssack."),
  "fr": ("Sac de couchage sarcophage", "Sac de couchage chaud jusqu'à -5 °C avec sac de compression."),
  "es": ("Saco de dormir tipo momia", "Saco de dormir cálido hasta -5 °C con bolsa de compresión."),
  "ja": ("マミー型寝袋", "-5℃まで対応の暖かい寝袋。収納袋付き。"),
  "zh": ("木乃伊式睡袋", "保暖睡袋，适用零下5度，附压缩袋。")}),
 ("Apparel > Shoes > Running Shoes", {
  "en": ("Women's running shoes", "Breathable lightweight running shoes with cushioned sole."),
  "de": ("Damen-Laufschuhe", "Atmungsaktive, leichte Laufschuhe mit gedämpfter Sohle."),
  "fr": ("Chaussures de running femme", "Chaussures de course légères et respirantes avec semelle amortissante."),
  "es": ("Zapatillas de running para mujer", "Zapatillas de correr ligeras y transpirables con suela amortiguada."),
  "ja": ("レディース ランニングシューズ", "通気性が良く軽量、クッション性の高いソールのランニングシューズ。"),
  "zh": ("女士跑步鞋", "透气轻便跑鞋，缓震鞋底。")}),
 ("Apparel > Outerwear > Rain Jackets", {
  "en": ("Men's waterproof rain jacket", "Packable hooded rain jacket with taped seams."),
  "de": ("Wasserdichte Herren-Regenjacke", "Verstaubare Regenjacke mit Kapuze und verschweißten Nähten."),
  "fr": ("Veste de pluie imperméable homme", "Veste de pluie compressible à capuche avec coutures étanches."),
  "es": ("Chaqueta impermeable de hombre", "Chubasquero plegable con capucha y costuras selladas."),
  "ja": ("メンズ防水レインジャケット", "シームテープ加工、フード付きで持ち運べるレインジャケット。"),
  "zh": ("男士防水雨衣夹克", "可收纳连帽雨衣，接缝压胶。")}),
 ("Apparel > Accessories > Backpacks", {
  "en": ("Laptop backpack 15.6 inch", "Water-resistant travel backpack with USB charging port and padded laptop sleeve."),
  "de": ("Laptop-Rucksack 15,6 Zoll", "Wasserabweisender Reiserucksack mit USB-Ladeanschluss und gepolstertem Laptopfach."),
  "fr": ("Sac à dos pour ordinateur 15,6 pouces", "Sac à dos de voyage déperlant avec port USB et compartiment rembourré."),
  "es": ("Mochila para portátil de 15,6 pulgadas", "Mochila de viaje resistente al agua con puerto USB y compartimento acolchado."),
  "ja": ("15.6インチ ノートPCリュック", "USB充電ポートとクッション付きPC収納を備えた撥水トラベルリュック。"),
  "zh": ("15.6英寸电脑双肩包", "防泼水旅行背包，带USB充电口和加厚电脑隔层。")}),
 ("Apparel > Accessories > Sunglasses", {
  "en": ("Polarized sunglasses", "UV400 polarized sunglasses with lightweight frame."),
  "de": ("Polarisierte Sonnenbrille", "Polarisierte Sonnenbrille mit UV400-Schutz und leichtem Rahmen."),
  "fr": ("Lunettes de soleil polarisées", "Lunettes de soleil polarisées UV400 à monture légère."),
  "es": ("Gafas de sol polarizadas", "Gafas de sol polarizadas UV400 con montura ligera."),
  "ja": ("偏光サングラス", "UV400カットの軽量フレーム偏光サングラス。"),
  "zh": ("偏光太阳镜", "UV400防护偏光墨镜，镜框轻盈。")}),
 ("Health & Beauty > Personal Care > Electric Toothbrushes", {
  "en": ("Sonic electric toothbrush", "Rechargeable toothbrush with 3 modes and 2-minute timer."),
  "de": ("Elektrische Schallzahnbürste", "Wiederaufladbare Zahnbürste mit 3 Modi und 2-Minuten-Timer."),
  "fr": ("Brosse à dents électrique sonique", "Brosse à dents rechargeable avec 3 modes et minuteur de 2 minutes."),
  "es": ("Cepillo de dientes eléctrico sónico", "Cepillo recargable con 3 modos y temporizador de 2 minutos."),
  "ja": ("音波式電動歯ブラシ", "3つのモードと2分タイマー付きの充電式歯ブラシ。"),
  "zh": ("声波电动牙刷", "充电式牙刷，三种模式，两分钟定时。")}),
 ("Health & Beauty > Personal Care > Hair Dryers", {
  "en": ("Ionic hair dryer", "Fast-drying 2000 W hair dryer with diffuser and cool shot."),
  "de": ("Ionen-Haartrockner", "Schnell trocknender 2000-W-Föhn mit Diffusor und Kaltstufe."),
  "fr": ("Sèche-cheveux ionique", "Sèche-cheveux 2000 W à séchage rapide avec diffuseur et air froid."),
  "es": ("Secador de pelo iónico", "Secador de 2000 W de secado rápido con difusor y aire frío."),
  "ja": ("マイナスイオンヘアドライヤー", "速乾2000W、ディフューザーと冷風機能付き。"),
  "zh": ("负离子吹风机", "2000瓦速干吹风机，附扩散器和冷风档。")}),
 ("Toys & Games > Building Toys", {
  "en": ("Building blocks set 500 pieces", "Creative construction bricks for children aged 6 and up."),
  "de": ("Bausteine-Set 500 Teile", "Kreative Klemmbausteine für Kinder ab 6 Jahren."),
  "fr": ("Jeu de construction 500 pièces", "Briques de construction créatives pour enfants dès 6 ans."),
  "es": ("Juego de bloques de construcción 500 piezas", "Bloques de construcción creativos para niños a partir de 6 años."),
  "ja": ("ブロック玩具セット 500ピース", "6歳以上向けの創造力を育てる組み立てブロック。"),
  "zh": ("500片积木套装", "创意拼搭积木，适合6岁以上儿童。")}),
 ("Toys & Games > Puzzles", {
  "en": ("1000-piece jigsaw puzzle", "Landscape jigsaw puzzle for adults, 70 x 50 cm."),
  "de": ("Puzzle mit 1000 Teilen", "Landschaftspuzzle für Erwachsene, 70 x 50 cm."),
  "fr": ("Puzzle 1000 pièces", "Puzzle paysage pour adultes, 70 x 50 cm."),
  "es": ("Puzle de 1000 piezas", "Rompecabezas de paisaje para adultos, 70 x 50 cm."),
  "ja": ("1000ピース ジグソーパズル", "大人向けの風景ジグソーパズル、70×50cm。"),
  "zh": ("1000片拼图", "成人风景拼图，70×50厘米。")}),
 ("Baby & Toddler > Strollers", {
  "en": ("Lightweight baby stroller", "Foldable travel stroller with reclining seat and sun canopy."),
  "de": ("Leichter Kinderwagen", "Zusammenklappbarer Reisebuggy mit Liegeposition und Sonnenverdeck."),
  "fr": ("Poussette légère", "Poussette de voyage pliable avec siège inclinable et canopy."),
  "es": ("Carrito de bebé ligero", "Silla de paseo plegable con respaldo reclinable y capota."),
  "ja": ("軽量ベビーカー", "リクライニングとサンシェード付きの折りたたみベビーカー。"),
  "zh": ("轻便婴儿推车", "可折叠旅行推车，座椅可躺，带遮阳篷。")}),
 ("Pet Supplies > Dogs > Beds", {
  "en": ("Orthopedic dog bed", "Memory foam dog bed with removable washable cover, large size."),
  "de": ("Orthopädisches Hundebett", "Hundebett aus Memory-Schaum mit abnehmbarem, waschbarem Bezug, Größe L."),
  "fr": ("Lit orthopédique pour chien", "Lit pour chien en mousse à mémoire de forme, housse lavable, grande taille."),
  "es": ("Cama ortopédica para perros", "Cama viscoelástica para perros con funda lavable, talla grande."),
  "ja": ("犬用低反発ベッド", "取り外して洗えるカバー付き、大型犬用の低反発ベッド。"),
  "zh": ("狗狗记忆棉床垫", "大号记忆棉宠物床，外套可拆洗。")}),
]
BRANDS = ["Nordvik", "Soleado", "Kaiyo", "Lumière", "Bergmann", "Hanami", "Aurora", "Tianlu", "Vento", "Kumo"]
CURRENCY = {"en": "USD", "de": "EUR", "fr": "EUR", "es": "EUR", "ja": "JPY", "zh": "CNY"}


def main() -> None:
    rng = random.Random(7)
    out = Path(__file__).with_name("catalog.jsonl")
    n = 0
    with out.open("w", encoding="utf-8") as fh:
        for t, (category, langs) in enumerate(TYPES):
            base = rng.uniform(12, 400)
            for lang, (title, desc) in langs.items():
                n += 1
                price = round(base * {"JPY": 150, "CNY": 7.2}.get(CURRENCY[lang], 1.0), 2)
                doc = {"id": f"p{t:03d}-{lang}", "title": title, "description": desc,
                       "brand": rng.choice(BRANDS), "category": category, "price": price,
                       "currency": CURRENCY[lang], "market": lang,
                       "attributes": {"rating": round(rng.uniform(3.5, 5.0), 1),
                                      "in_stock": rng.random() > 0.15}}
                fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    print(f"{n} products -> {out}")


if __name__ == "__main__":
    main()
